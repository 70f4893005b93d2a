/* lubeck.testhost: the host pipeline inside a Lua program, with no sockets, for
 * lubeck.test. Each test host has its own libev loop and its own app state; a
 * request is a Mongrel2 frame in, the reply frames out. */
#include "host.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#define TESTHOST_MT "lubeck.TestHost"

typedef struct testhost {
    struct ev_loop *loop;
    lubeck *h;
    char **frames;               /* replies captured since the last request() */
    size_t *lens;
    int nframes, cap;
} testhost;

static void capture(lubeck *h, const void *frame, size_t len, void *ud)
{
    testhost *t = ud;
    if (t->nframes == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        char **frames = realloc(t->frames, (size_t)cap * sizeof *frames);
        size_t *lens = realloc(t->lens, (size_t)cap * sizeof *lens);
        if (frames) t->frames = frames;
        if (lens) t->lens = lens;
        if (!frames || !lens) return;
        t->cap = cap;
    }
    char *copy = malloc(len ? len : 1);
    if (!copy) return;
    memcpy(copy, frame, len);
    t->frames[t->nframes] = copy;
    t->lens[t->nframes++] = len;
}

static testhost *check(lua_State *L)
{
    testhost *t = luaL_checkudata(L, 1, TESTHOST_MT);
    if (!t->h) luaL_error(L, "this test host is closed");
    return t;
}

/* testhost.new(app_dir [, debug]) → host | nil, err */
static int l_new(lua_State *L)
{
    const char *app = luaL_checkstring(L, 1);
    testhost *t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    luaL_getmetatable(L, TESTHOST_MT);
    lua_setmetatable(L, -2);
    t->loop = ev_loop_new(EVFLAG_AUTO);
    lubeck_config cfg = { .app = app, .debug = lua_toboolean(L, 2) };
    char err[4096];
    t->h = lubeck_new(t->loop, &cfg, err, sizeof err);
    if (!t->h) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    t->h->quiet = 1;
    if (host_start_local(t->h, capture, t) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, lubeck_error(t->h));
        lubeck_free(t->h);
        t->h = NULL;
        return 2;
    }
    return 1;
}

/* Runs the loop until no request is in flight or timeout seconds pass. */
static void run_until_idle(testhost *t, double timeout)
{
    double deadline = ev_time() + timeout;
    while (t->h->inflight > 0 && ev_time() < deadline) {
        ev_now_update(t->loop);
        ev_run(t->loop, EVRUN_ONCE);
    }
}

static int push_frames(lua_State *L, testhost *t)
{
    lua_createtable(L, t->nframes, 0);
    for (int i = 0; i < t->nframes; i++) {
        lua_pushlstring(L, t->frames[i], t->lens[i]);
        lua_rawseti(L, -2, i + 1);
        free(t->frames[i]);
    }
    t->nframes = 0;
    return 1;
}

/* host:request(frame [, timeout=30]) → { reply frame, ... } */
static int l_request(lua_State *L)
{
    testhost *t = check(L);
    size_t len;
    const char *frame = luaL_checklstring(L, 2, &len);
    double timeout = luaL_optnumber(L, 3, 30);
    ev_now_update(t->loop);
    host_inject(t->h, frame, len);
    run_until_idle(t, timeout);
    return push_frames(L, t);
}

/* host:send(frame): hand a frame over without waiting (e.g. a disconnect) */
static int l_send(lua_State *L)
{
    testhost *t = check(L);
    size_t len;
    const char *frame = luaL_checklstring(L, 2, &len);
    ev_now_update(t->loop);
    host_inject(t->h, frame, len);
    return 0;
}

/* host:run(seconds): let timers and spawned threads run; → captured frames */
static int l_run(lua_State *L)
{
    testhost *t = check(L);
    double deadline = ev_time() + luaL_checknumber(L, 2);
    while (ev_time() < deadline) {
        ev_now_update(t->loop);
        ev_run(t->loop, EVRUN_NOWAIT);
        if (t->h->inflight == 0 && t->h->sched.ntasks == 0) break;
        ev_sleep(0.001);
    }
    return push_frames(L, t);
}

/* host:front_reset(sender): as if the reader of that Mongrel2 saw it reconnect */
static int l_front_reset(lua_State *L)
{
    testhost *t = check(L);
    size_t len;
    const char *sender = luaL_checklstring(L, 2, &len);
    ev_now_update(t->loop);
    host_front_reset(t->h, slice_make(sender, len));
    return 0;
}

static int l_inflight(lua_State *L)
{
    lua_pushinteger(L, check(L)->h->inflight);
    return 1;
}

static int l_reload(lua_State *L)
{
    testhost *t = check(L);
    if (host_reload(t->h) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, lubeck_error(t->h));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_close(lua_State *L)
{
    testhost *t = luaL_checkudata(L, 1, TESTHOST_MT);
    if (!t->h) return 0;
    lubeck_free(t->h);
    t->h = NULL;
    for (int i = 0; i < t->nframes; i++) free(t->frames[i]);
    free(t->frames);
    free(t->lens);
    t->frames = NULL;
    t->lens = NULL;
    ev_loop_destroy(t->loop);
    return 0;
}

LUBECK_API int luaopen_lubeck_testhost(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "request", l_request }, { "send", l_send }, { "run", l_run },
        { "inflight", l_inflight }, { "reload", l_reload }, { "close", l_close },
        { "front_reset", l_front_reset },
        { NULL, NULL }
    };
    host_lua_class(L, TESTHOST_MT, methods, l_close, NULL);
    lua_newtable(L);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "new");
    return 1;
}
