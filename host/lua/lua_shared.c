/* lubeck.shared(name)'s C functions (lua/lubeck/shared.lua wraps them in a
 * Dict): arguments checked and turned into the zone's calls (services/shared.c),
 * results and refusals turned back into Lua values. Misuse raises; a full
 * zone, a value too large or a wrong kind return nil, reason. */
#include "lua_shared.h"

#include <lauxlib.h>

#include "host.h"

static shared_zone *zone_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The dict's name and the key (arguments 1 and 2); raises when they are too
 * long together. */
static void check_key(lua_State *L, const char **name, size_t *nlen, const char **key, size_t *klen)
{
    *name = luaL_checklstring(L, 1, nlen);
    *key = luaL_checklstring(L, 2, klen);
    if (*nlen + 1 + *klen > SHARED_KEY_MAX) luaL_argerror(L, 2, "key too long");
}

static int fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

/* shared.get(name, key) → value | nil */
static int l_get(lua_State *L)
{
    const char *name, *key, *err;
    size_t nlen, klen;
    check_key(L, &name, &nlen, &key, &klen);
    char buf[SHARED_DATA_MAX];
    shared_value v;
    if (shared_get(zone_of(L), name, nlen, key, klen, &v, buf, &err) != 0) return fail(L, err);
    switch (v.type) {
    case SHARED_STRING: lua_pushlstring(L, v.str, v.len); break;
    case SHARED_NUMBER: lua_pushnumber(L, v.number); break;
    case SHARED_BOOLEAN: lua_pushboolean(L, v.number != 0); break;
    default: lua_pushnil(L);
    }
    return 1;
}

/* shared.set(name, key, value [, ttl]) → true | nil, err; a nil value deletes */
static int l_set(lua_State *L)
{
    const char *name, *key, *err;
    size_t nlen, klen;
    check_key(L, &name, &nlen, &key, &klen);
    int type = lua_type(L, 3);
    double ttl = luaL_optnumber(L, 4, 0);
    shared_value v = { .type = SHARED_NIL };
    switch (type) {
    case LUA_TSTRING: v.type = SHARED_STRING; v.str = lua_tolstring(L, 3, &v.len); break;
    case LUA_TNUMBER: v.type = SHARED_NUMBER; v.number = lua_tonumber(L, 3); break;
    case LUA_TBOOLEAN: v.type = SHARED_BOOLEAN; v.number = lua_toboolean(L, 3); break;
    case LUA_TNIL: break;
    default: return luaL_argerror(L, 3, "a shared value is a string, number or boolean");
    }
    if (shared_set(zone_of(L), name, nlen, key, klen, &v, ttl, &err) != 0) return fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* shared.incr(name, key, by [, init [, ttl]]) → new value | nil, err */
static int l_incr(lua_State *L)
{
    const char *name, *key, *err;
    size_t nlen, klen;
    check_key(L, &name, &nlen, &key, &klen);
    double by = luaL_optnumber(L, 3, 1);
    int has_init = !lua_isnoneornil(L, 4);
    double init = luaL_optnumber(L, 4, 0);
    double ttl = luaL_optnumber(L, 5, 0);
    double result;
    if (shared_incr(zone_of(L), name, nlen, key, klen, by, has_init, init, ttl, &result, &err) != 0)
        return fail(L, err);
    lua_pushnumber(L, result);
    return 1;
}

void shared_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg fns[] = {
        { "get", l_get }, { "set", l_set }, { "incr", l_incr }, { NULL, NULL }
    };
    lua_pushlightuserdata(L, g->host->shared);   /* every function's upvalue */
    luaL_setfuncs(L, fns, 1);
}
