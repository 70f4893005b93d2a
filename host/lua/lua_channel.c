/* The Lua face of channels (host/services/channel.c), which lua/lubeck/channel.lua
 * wraps as lubeck.channel(name):
 *   core.channel.wait(name [, timeout]) → payload | nil, err
 *   core.channel.publish(name, payload) → waiters woken in this process
 *   core.channel.redis([url]) → the url channels cross hosts through | nil
 * A publish goes to this process's waiters, the host's other workers (the
 * bus) and other hosts (the Redis link). Payloads are strings: values that
 * cross generations travel as JSON text the Lua side encoded. */
#include "lua_channel.h"

#include <lauxlib.h>

#include "bus.h"
#include "channel.h"
#include "scheduler.h"

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* How a payload reaches a waiting task: the string its wait returns. */
static int push_payload(lbk_task *t, const char *payload, size_t len)
{
    lua_pushlstring(t->co, payload, len);
    return 1;
}

/* channel.wait(name [, timeout]) → payload | nil, "timeout" | nil, "closed"
 * | nil, "closing" (the host is stopping: a long poll answers now) */
static int l_channel_wait(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    double timeout = luaL_optnumber(L, 2, -1);
    lbk_task *t = sched_running(g->sched, L, "channel:wait");
    if (g->host->stopping) {
        lua_pushnil(L);
        lua_pushliteral(L, "closing");
        return 2;
    }
    void *c = channels_join(g->host->channels, t, name, len, push_payload);
    if (!c) return luaL_error(L, "channel:wait: out of memory");
    return sched_wait(L, t, c, timeout, channels_leave, 0);
}

/* channel.publish(name, payload) → number woken in this process */
static int l_channel_publish(lua_State *L)
{
    lubeck *h = gen_of(L)->host;
    size_t name_len, len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    const char *payload = luaL_checklstring(L, 2, &len);
    if (h->bus) bus_send_channel(h->bus, name, name_len, payload, len);   /* the other workers */
    lua_pushinteger(L, channels_publish(h->channels, name, name_len, payload, len));
    return 1;
}

/* channel.redis([url]) → the url channels cross hosts through, or nil | nil, err
 * for a bad url. The app's redis option calls it while loading: --redis wins,
 * and a reload keeps the url the host started with (its link is made once). */
static int l_channel_redis(lua_State *L)
{
    lbk_channels *ch = gen_of(L)->host->channels;
    const char *url = luaL_optstring(L, 1, NULL);
    char err[512];
    if (url && channels_offer_redis(ch, url, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    const char *kept = channels_redis_url(ch);
    if (kept) lua_pushstring(L, kept); else lua_pushnil(L);
    return 1;
}

void channel_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg functions[] = {
        { "redis", l_channel_redis }, { "wait", l_channel_wait },
        { "publish", l_channel_publish }, { NULL, NULL }
    };
    lua_pushlightuserdata(L, g);
    luaL_setfuncs(L, functions, 1);
}
