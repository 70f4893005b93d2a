#define _GNU_SOURCE
/* lubeck.core: the small set of C functions the Lua framework stands on,
 * assembled at the end of this file from one list of libraries: each fills a
 * sub-table (core.req, core.stream, core.pg, ...) or, for the few that belong
 * to none, core itself. This file holds the request-side ones: routes,
 * requests, responses, streams, time, logging.
 * Requests are named by numeric handles (see host.h); a stale handle reads as a
 * finished request. Misuse raises; I/O outcomes return values. Every name the
 * table gets is listed in docs/architecture.md ("The seam");
 * tests/spec/seam_spec.lua fails on one that is not. */
#include "host.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

#include "channel.h"
#include "lua_channel.h"
#include "lua_cosocket.h"
#include "ngx_lib.h"
#include "lua_crypto.h"
#include "flow.h"
#include "lua_fast.h"
#include "lua_form.h"
#include "log.h"
#include "lua_pg.h"
#include "reply.h"
#include "scheduler.h"
#include "lua_shared.h"
#include "lua_thread.h"
#include "websocket.h"

#define MAX_REPLY_HEADERS 256

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static lbk_req *check_req(lua_State *L, int idx)
{
    lbk_gen *g = gen_of(L);
    return host_req_from_handle(g->host, luaL_checknumber(L, idx));
}

static void push_slice(lua_State *L, slice s)
{
    if (s.p) lua_pushlstring(L, s.p, s.n); else lua_pushnil(L);
}

/* ---- routes ----------------------------------------------------------------- */

/* route.add(pattern, methods) → index (1-based), names | nil, err */
static int l_route_add(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    size_t len;
    const char *pattern = luaL_checklstring(L, 1, &len);
    unsigned methods = (unsigned)luaL_optinteger(L, 2, 0);
    char err[512];
    int idx = router_add(g->router, pattern, len, methods, err, sizeof err);
    if (idx < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushinteger(L, idx + 1);
    int n = router_ncaptures(g->router, idx);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const char *name = router_capture_name(g->router, idx, i);
        if (name) lua_pushstring(L, name); else lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

static int l_method_bit(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    lua_pushinteger(L, router_method_bit(name, len));
    return 1;
}

/* ---- requests ---------------------------------------------------------------- */

/* req.field(handle, i) → one of query, uri, version, remote_addr, conn_id,
 * sender, method, path (i = 1..8), read when a handler first asks for it. The
 * positions are request.lua's FIELDS list; tests/spec/seam_spec.lua reads
 * each one through the host and checks it against the field of that name. */
static int l_req_field(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (!r) return luaL_error(L, "this request has ended");
    m2_request *m = &r->m2;
    switch (luaL_checkinteger(L, 2)) {
    case 1: if (m->query.p) push_slice(L, m->query); else lua_pushliteral(L, ""); break;
    case 2: push_slice(L, m->uri.p ? m->uri : m->path); break;
    case 3: push_slice(L, m->version); break;
    case 4: push_slice(L, m->remote_addr); break;
    case 5: lua_pushnumber(L, m->conn_id); break;
    case 6: push_slice(L, m->sender); break;
    case 7: push_slice(L, m->method); break;
    case 8: push_slice(L, m->path); break;
    default: return luaL_argerror(L, 2, "no such field");
    }
    return 1;
}

static int is_client_header(slice key)
{
    /* Mongrel2 lower-cases client header names; its own keys are upper-case. */
    for (size_t i = 0; i < key.n; i++)
        if (key.p[i] >= 'A' && key.p[i] <= 'Z') return 0;
    return 1;
}

/* req.headers(handle) → { name = value | {value, ...} } (client headers only) */
static int l_req_headers(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (!r) return luaL_error(L, "this request has ended");
    m2_headers *hs = &r->m2.headers;
    lua_createtable(L, 0, hs->n);
    for (int i = 0; i < hs->n; i++) {
        m2_header *e = &hs->v[i];
        if (!is_client_header(e->key)) continue;
        lua_pushlstring(L, e->key.p, e->key.n);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            push_slice(L, e->value);
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            /* a repeated header becomes a list */
            lua_createtable(L, 2, 0);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
            push_slice(L, e->value);
            lua_rawseti(L, -2, 2);
        } else {
            push_slice(L, e->value);
            lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        }
        lua_rawset(L, -3);
    }
    return 1;
}

/* req.header(handle, name [, sep=", "]) → the values of a client header joined
 * by sep (Cookie headers join with "; "), or nil */
static int l_req_header(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (!r) return luaL_error(L, "this request has ended");
    size_t len, sep_len;
    const char *name = luaL_checklstring(L, 2, &len);
    const char *sep = luaL_optlstring(L, 3, ", ", &sep_len);
    m2_headers *hs = &r->m2.headers;
    luaL_Buffer b;
    int found = 0;
    for (int i = 0; i < hs->n; i++) {
        m2_header *e = &hs->v[i];
        if (e->key.n != len || strncasecmp(e->key.p, name, len) != 0 || !is_client_header(e->key))
            continue;
        if (found++ == 0) luaL_buffinit(L, &b); else luaL_addlstring(&b, sep, sep_len);
        luaL_addlstring(&b, e->value.p, e->value.n);
    }
    if (found) luaL_pushresult(&b); else lua_pushnil(L);
    return 1;
}

/* req.m2(handle, KEY) → a raw Mongrel2 header such as PATTERN or URL_SCHEME */
static int l_req_m2(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (!r) return luaL_error(L, "this request has ended");
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);
    m2_headers *hs = &r->m2.headers;
    for (int i = 0; i < hs->n; i++)
        if (hs->v[i].key.n == len && memcmp(hs->v[i].key.p, key, len) == 0) {
            push_slice(L, hs->v[i].value);
            return 1;
        }
    lua_pushnil(L);
    return 1;
}

static int l_req_body(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (!r) return luaL_error(L, "this request has ended");
    push_slice(L, r->m2.body.p ? r->m2.body : SLICE_LIT(""));
    return 1;
}

/* req.active(handle) → true while the response can still be sent */
static int l_req_active(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    lua_pushboolean(L, r && !r->done);
    return 1;
}

/* req.upload(handle) → the temp file of a Mongrel2 async upload (checked by the
 * host when the request arrived), or nil */
static int l_req_upload(lua_State *L)
{
    lbk_req *r = check_req(L, 1);
    if (r && r->upload_path) lua_pushstring(L, r->upload_path);
    else lua_pushnil(L);
    return 1;
}

/* ---- responses --------------------------------------------------------------- */

/* Reads a flat { name, value, ... } table into slices (the strings stay alive on
 * the Lua stack for the call). Returns the pair count, or raises on a value that
 * is not a string; sets *bad to the first header that may not be sent. */
static int read_headers(lua_State *L, int idx, lbk_req *r, slice *out, int max, const char **bad)
{
    *bad = NULL;
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    int n = (int)lua_objlen(L, idx);
    if (n % 2 != 0) luaL_error(L, "headers must be name, value pairs");
    if (n / 2 > max) luaL_error(L, "too many response headers (%d, at most %d)", n / 2, max);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (!s) luaL_error(L, "header %s must be a string", i % 2 ? "value" : "name");
        lua_pop(L, 1);   /* still referenced by the table */
        out[i] = slice_make(s, len);
    }
    for (int i = 0; i < n; i += 2) {
        if (!reply_header_ok(out[i], out[i + 1])) {
            if (!*bad) {
                lua_pushlstring(L, out[i].p, out[i].n);
                *bad = lua_tostring(L, -1);
            }
            continue;
        }
        if (out[i].n == 10 && strncasecmp(out[i].p, "connection", 10) == 0 &&
            out[i + 1].n >= 5 && strcasestr(out[i + 1].p, "close"))
            r->keep_alive = 0;
    }
    return n / 2;
}

static int push_bad_header(lua_State *L, const char *name)
{
    lua_pushnil(L);
    lua_pushfstring(L, "header '%s' has a bad name or holds CR, LF or NUL", name);
    return 2;
}

/* respond(handle, status, body, headers) → true | false (dropped) | nil, err;
 * headers is a flat { name, value, ... } list (a response with only a
 * Content-Type goes through fast.respond, lua_fast.c) */
static int l_respond(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = check_req(L, 1);
    int status = (int)luaL_checkinteger(L, 2);
    size_t blen = 0;
    const char *body = luaL_optlstring(L, 3, "", &blen);
    if (!r || r->done || r->head_sent) {
        lua_pushboolean(L, 0);
        return 1;
    }
    slice hs[2 * MAX_REPLY_HEADERS];
    const char *bad;
    int nh = read_headers(L, 4, r, hs, MAX_REPLY_HEADERS, &bad);
    if (bad) return push_bad_header(L, bad);
    reply_spec spec = { .status = status, .headers = hs, .nheaders = nh };
    host_reply_defaults(g->host, r, &spec);
    lua_pushboolean(L, host_respond(g->host, r, &spec, slice_make(body, blen)) == 0);
    return 1;
}

/* stream.start(handle, status, headers) → true | false | nil, err */
static int l_stream_start(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = check_req(L, 1);
    int status = (int)luaL_checkinteger(L, 2);
    if (!r || r->done || r->head_sent) {
        lua_pushboolean(L, 0);
        return 1;
    }
    slice hs[2 * MAX_REPLY_HEADERS];
    const char *bad;
    int nh = read_headers(L, 3, r, hs, MAX_REPLY_HEADERS, &bad);
    if (bad) return push_bad_header(L, bad);
    reply_spec spec = { .status = status, .headers = hs, .nheaders = nh };
    host_reply_defaults(g->host, r, &spec);
    lua_pushboolean(L, host_stream_start(g->host, r, &spec) == 0);
    return 1;
}

/* Back-pressure for streams (docs/flow-control.md). With Mongrel2's flow
 * control a write goes out within the connection's credit window (flow.c) and
 * the writer waits while any of it is still in the backlog: a slow client
 * slows its own stream only. Without flow control (no DOWNLOAD_CREDITS from
 * Mongrel2) a stream sends at most STREAM_PACE_FRAMES frames per
 * STREAM_PACE_WINDOW, half of Mongrel2's 16-message queue, and then waits out
 * the window (the same budget WebSockets use, websocket.c). */
#define STREAM_PACE_FRAMES 8
#define STREAM_PACE_WINDOW 0.002

static void stream_room(void *ud, int open)
{
    lbk_task *t = ud;
    free(t->wait_on);   /* the flow_waiter; sched_wake ends the wait */
    sched_wake_result(t, open, "closed");
}

/* The writer was cancelled (its client left, its request timed out). */
static void stream_undo_wait(lbk_task *t)
{
    flow_waiter *w = t->wait_on;
    if (!w) return;
    flow_unwatch(t->gen->host, w);
    free(w);
}

/* Waits until the connection's backlog is empty: true, or nil, "closed". */
static int wait_for_backlog(lua_State *L, lbk_task *t, lbk_req *r)
{
    lubeck *h = t->gen->host;
    if (flow_backlog(h, r->m2.sender, r->m2.conn_id) == 0) return 1;
    flow_waiter *w = calloc(1, sizeof *w);
    if (!w) return luaL_error(L, "out of memory");
    w->fn = stream_room;
    w->ud = t;
    if (!flow_watch(h, r->m2.sender, r->m2.conn_id, w)) {
        free(w);
        return 1;
    }
    lua_pop(L, 1);
    return sched_wait(L, t, w, -1, stream_undo_wait, 0);
}

/* stream.write(handle, data) → true | false (dropped) | nil, "closed"; may
 * wait for the client to take what was sent before */
static int l_stream_write(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = check_req(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int sent = r && host_stream_write(g->host, r, slice_make(data, len)) == 0;
    lua_pushboolean(L, sent);
    lbk_task *t = g->sched->current;
    if (!sent || !t || t->co != L || !r->streaming) return 1;
    if (flow_window(g->host)) return wait_for_backlog(L, t, r);
    double now = ev_now(g->host->loop);
    if (now - r->pace_start >= STREAM_PACE_WINDOW) {
        r->pace_start = now;
        r->pace_frames = 0;
    }
    if (++r->pace_frames < STREAM_PACE_FRAMES) return 1;
    r->pace_frames = 0;
    lua_pop(L, 1);
    return sched_sleep(L, t, r->pace_start + STREAM_PACE_WINDOW - now);   /* resumes with true */
}

static int l_stream_finish(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = check_req(L, 1);
    lua_pushboolean(L, r && host_stream_end(g->host, r) == 0);
    return 1;
}

/* close(handle): drop the client connection (after a failed stream) */
static int l_close(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = check_req(L, 1);
    if (r && !(r->cancelled)) {
        host_close_conn(g->host, r);
        r->done = 1;
    }
    return 0;
}

/* ---- text ------------------------------------------------------------------- */

/* utf8_valid(s) → true when s is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates): what RFC 8259 requires of JSON text. */
static int l_utf8_valid(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, websocket_utf8_valid(s, n));
    return 1;
}

static int l_reason(lua_State *L)
{
    lua_pushstring(L, reply_reason((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* ---- time and waiting --------------------------------------------------------- */

static int l_sleep(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    double seconds = luaL_checknumber(L, 1);
    lbk_task *t = sched_running(g->sched, L, "lubeck.sleep");
    return sched_sleep(L, t, seconds);
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, ev_now(gen_of(L)->host->loop));
    return 1;
}

/* deliver(sender, {conn_id, ...}, data): Mongrel2 broadcast, 128 ids a frame */
static int l_deliver(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    size_t slen, dlen;
    const char *sender = luaL_checklstring(L, 1, &slen);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *data = luaL_checklstring(L, 3, &dlen);
    for (size_t i = 0; i < slen; i++) {
        char c = sender[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'))
            return luaL_argerror(L, 1, "a Mongrel2 sender is letters, digits and '-'");
    }
    int n = (int)lua_objlen(L, 2);
    uint32_t ids[M2_MAX_TARGETS];
    int frames = 0;
    for (int i = 0; i < n;) {
        int k = 0;
        for (; k < M2_MAX_TARGETS && i < n; k++, i++) {
            lua_rawgeti(L, 2, i + 1);
            lua_Number id = lua_tonumber(L, -1);
            lua_pop(L, 1);
            if (id < 0 || id > 4294967295.0 || id != (lua_Number)(uint32_t)id)
                return luaL_error(L, "deliver: conn id #%d is not a Mongrel2 connection id", i + 1);
            ids[k] = (uint32_t)id;
        }
        host_send_ids(g->host, slice_make(sender, slen), ids, k, slice_make(data, dlen));
        frames++;
    }
    lua_pushinteger(L, frames);
    return 1;
}

/* stats() → what the host holds right now, for tests and monitoring */
static int l_stats(lua_State *L)
{
    lubeck *h = gen_of(L)->host;
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)getpid());   /* which worker or host answered */
    lua_setfield(L, -2, "pid");
    lua_pushinteger(L, h->inflight);
    lua_setfield(L, -2, "requests");
    lua_pushinteger(L, h->sched.ntasks);
    lua_setfield(L, -2, "coroutines");
    lua_pushinteger(L, cosockets_open(h->cosockets));
    lua_setfield(L, -2, "sockets");
    lua_pushinteger(L, channels_waiters(h->channels));
    lua_setfield(L, -2, "channel_waiters");
    return 1;
}

/* ---- logging ------------------------------------------------------------------- */

static int l_log(lua_State *L)
{
    const char *level = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    if (level[0] == 'e') log_error("%s", msg);
    else if (level[0] == 'w') log_warn("%s", msg);
    else log_info("%s", msg);
    return 0;
}

/* ---- lubeck.core ------------------------------------------------------------------ */

/* Each library's functions, under the name of its sub-table of lubeck.core;
 * "core" holds what belongs to no library. */
static const luaL_Reg core_functions[] = {
    { "respond", l_respond },
    { "close", l_close },
    { "deliver", l_deliver },
    { "utf8_valid", l_utf8_valid },
    { "reason", l_reason },
    { "sleep", l_sleep },
    { "now", l_now },
    { "log", l_log },
    { "stats", l_stats },
    { NULL, NULL }
};

static const luaL_Reg route_functions[] = {
    { "add", l_route_add },
    { "method_bit", l_method_bit },
    { NULL, NULL }
};

static const luaL_Reg req_functions[] = {
    { "field", l_req_field },
    { "headers", l_req_headers },
    { "header", l_req_header },
    { "m2", l_req_m2 },
    { "body", l_req_body },
    { "active", l_req_active },
    { "upload", l_req_upload },
    { NULL, NULL }
};

static const luaL_Reg stream_functions[] = {
    { "start", l_stream_start },
    { "write", l_stream_write },
    { "finish", l_stream_finish },
    { NULL, NULL }
};

/* The generation is every function's upvalue. */
static void add_functions(lua_State *L, lbk_gen *g, const luaL_Reg *functions)
{
    lua_pushlightuserdata(L, g);
    luaL_setfuncs(L, functions, 1);
}

static void core_open(lua_State *L, lbk_gen *g)
{
    add_functions(L, g, core_functions);
    lua_pushlightuserdata(L, sched_wait_marker());
    lua_setfield(L, -2, "wait_marker");
    lua_pushboolean(L, g->host->debug);
    lua_setfield(L, -2, "debug");
    lua_pushliteral(L, LUBECK_VERSION);
    lua_setfield(L, -2, "version");
}

static void route_open(lua_State *L, lbk_gen *g) { add_functions(L, g, route_functions); }
static void req_open(lua_State *L, lbk_gen *g) { add_functions(L, g, req_functions); }
static void stream_open(lua_State *L, lbk_gen *g) { add_functions(L, g, stream_functions); }

void host_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                    lua_CFunction tostring)
{
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        if (tostring) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
    }
    lua_pop(L, 1);
}

/* Every library of lubeck.core, in the shape of Lua's linit.c: the sub-table
 * it fills (NULL: lubeck.core itself) and the function that fills the table
 * on top of the stack. A new library is one line here, and its names one
 * block of docs/architecture.md's list (tests/spec/seam_spec.lua). */
static const struct {
    const char *name;
    void (*open)(lua_State *L, lbk_gen *g);
} core_libraries[] = {
    { NULL, core_open },           /* respond, close, deliver, sleep, now, log, ... */
    { NULL, thread_open },         /* spawn (lua_thread.c) */
    { NULL, cosocket_open },       /* tcp (lua_cosocket.c) */
    { NULL, udp_open_class },      /* udp (lua_udp.c) */
    { "route", route_open },       /* this file */
    { "req", req_open },           /* this file */
    { "stream", stream_open },     /* this file */
    { "form", form_open },         /* lua_form.c */
    { "model", model_open },       /* lua_model.c */
    { "crypto", crypto_open },     /* lua_crypto.c */
    { "channel", channel_open },   /* lua_channel.c */
    { "shared", shared_open },     /* lua_shared.c */
    { "ws", websocket_open },      /* lua_websocket.c */
    { "pg", pg_open },             /* lua_pg.c */
    { "tls", tls_open },           /* lua_tls.c */
    { "ngx", ngx_util_open },      /* ngx_util.c */
    { "re", ngx_re_open },         /* ngx_re.c */
    { "fast", fast_open },         /* lua_fast.c */
};

int luaopen_lubeck_core_for(lua_State *L, lbk_gen *g)
{
    lua_newtable(L);
    for (size_t i = 0; i < sizeof core_libraries / sizeof core_libraries[0]; i++) {
        if (!core_libraries[i].name) {
            core_libraries[i].open(L, g);
            continue;
        }
        lua_newtable(L);
        core_libraries[i].open(L, g);
        lua_setfield(L, -2, core_libraries[i].name);
    }
    return 1;
}
