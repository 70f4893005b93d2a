/* A generation: one Lua state with the app loaded into it, its router and the
 * Lua functions the host calls. Loading runs lubeck.loader under a traceback
 * handler, so every failure comes back as "file:line: message". */
#include "host.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "scheduler.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = "(error object is not a string)";
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static int open_core(lua_State *L)
{
    return luaopen_lubeck_core_for(L, lua_touserdata(L, lua_upvalueindex(1)));
}

static int open_native(lua_State *L)
{
    lubeck *h = lua_touserdata(L, lua_upvalueindex(1));
    lua_createtable(L, 0, h->nnatives);
    for (int i = 0; i < h->nnatives; i++) {
        lua_pushcfunction(L, h->natives[i].fn);
        lua_setfield(L, -2, h->natives[i].name);
    }
    return 1;
}

static void set_path(lua_State *L, const char *lua_dir, const char *app_dir)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?/init.lua;%s",
                    lua_dir, lua_dir, app_dir, app_dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

static void preload(lua_State *L, const char *name, lua_CFunction fn, void *upvalue)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushlightuserdata(L, upvalue);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

lbk_gen *gen_load(lubeck *h, const char *app_dir, char *err, size_t errlen)
{
    lbk_gen *g = calloc(1, sizeof *g);
    if (!g) { snprintf(err, errlen, "out of memory"); return NULL; }
    g->host = h;
    g->sched = &h->sched;
    g->entry_ref = g->timeout_ref = LUA_NOREF;
    g->router = router_new();
    g->L = luaL_newstate();
    if (!g->router || !g->L) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    lua_State *L = g->L;
    luaL_openlibs(L);
    set_path(L, h->lua_dir, app_dir);
    preload(L, "lubeck.core", open_core, g);
    preload(L, "lubeck.native", open_native, h);

    /* entry, on_timeout, request_timeout = require("lubeck.loader").load(dir, debug) */
    lua_pushcfunction(L, traceback);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lubeck.loader");
    if (lua_pcall(L, 1, 1, 1) != 0) goto lua_error;
    lua_getfield(L, -1, "load");
    lua_remove(L, -2);
    lua_pushstring(L, app_dir);
    lua_pushboolean(L, h->debug);
    lua_pushboolean(L, h->checking);
    if (lua_pcall(L, 3, 3, 1) != 0) goto lua_error;
    g->request_timeout = lua_tonumber(L, -1);
    lua_pop(L, 1);
    g->timeout_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    g->entry_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);   /* traceback */
    return g;

lua_error:
    snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "unknown error");
error:
    if (g->L) lua_close(g->L);
    router_free(g->router);
    free(g);
    return NULL;
}

void gen_release(lbk_gen *g)
{
    g->retired = 1;
    if (g->tasks > 0) return;   /* sched closes it when the last task ends */
    sched_gen_close(g);
    lua_close(g->L);
    router_free(g->router);
    free(g);
}
