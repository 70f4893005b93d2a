/* lubeck.spawn: light threads. A spawned function runs in its own coroutine,
 * belongs to the spawning request (cancelled with it) and starts at once,
 * running until its first wait. t:wait([timeout]) joins it.
 *
 * The thread itself (its task, its joiner, how it ended) is the service's
 * (services/thread.c); this file is its Lua object: it keeps the userdata
 * alive while the thread runs and keeps what the thread returned. */
#include "lua_thread.h"

#include <lauxlib.h>
#include <string.h>

#include "host.h"
#include "log.h"
#include "scheduler.h"
#include "thread.h"

#define THREAD_MT "lubeck.Thread"

typedef struct lua_thread {
    lbk_thread *th;
    lbk_gen *gen;
    int self_ref;                /* keeps the userdata alive while it runs */
    int results_ref;             /* { n = N, ... } results, or { n = 1, err } */
} lua_thread;

static lua_thread *check_thread(lua_State *L)
{
    return luaL_checkudata(L, 1, THREAD_MT);
}

/* Pushes ok, results... onto L; returns the count. */
static int push_outcome(lua_State *L, lua_thread *lt)
{
    lua_pushboolean(L, thread_ok(lt->th));
    lua_rawgeti(L, LUA_REGISTRYINDEX, lt->results_ref);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n + 1;
}

/* The thread's coroutine ended: its results (or its error) into one table. */
static void keep_results(void *ud, lbk_task *t, int failed)
{
    lua_thread *lt = ud;
    lua_State *co = t->co;
    if (failed) {
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(lt->gen->L, co, msg ? msg : "(error object is not a string)", 0);
        log_error("error in a spawned thread: %s", lua_tostring(lt->gen->L, -1));
        lua_pop(lt->gen->L, 1);
        /* keep just the error (on top) as the one result */
        if (lua_gettop(co) == 0) lua_pushliteral(co, "thread failed");
        if (lua_gettop(co) > 1) lua_replace(co, 1);   /* with one value it is already there */
        lua_settop(co, 1);
    }
    int n = lua_gettop(co);
    lua_createtable(co, n, 1);
    lua_insert(co, 1);
    for (int i = n; i >= 1; i--) lua_rawseti(co, 1, i);
    lua_pushinteger(co, n);
    lua_setfield(co, 1, "n");
    lt->results_ref = luaL_ref(co, LUA_REGISTRYINDEX);
}

static int push_to_joiner(void *ud, lbk_task *joiner)
{
    return push_outcome(joiner->co, ud);
}

static void finished(void *ud)
{
    lua_thread *lt = ud;
    luaL_unref(lt->gen->L, LUA_REGISTRYINDEX, lt->self_ref);
    lt->self_ref = LUA_NOREF;
}

static const lbk_thread_hooks thread_hooks = { keep_results, push_to_joiner, finished };

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* spawn(fn, ...) → thread */
static int l_spawn(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_task *cur = sched_running(g->sched, L, "lubeck.spawn");
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 1;
    lua_thread *lt = lua_newuserdata(L, sizeof *lt);
    memset(lt, 0, sizeof *lt);
    lt->gen = cur->gen;
    lt->self_ref = LUA_NOREF;
    lt->results_ref = LUA_NOREF;
    luaL_getmetatable(L, THREAD_MT);
    lua_setmetatable(L, -2);        /* from here its __gc frees lt->th */
    lt->th = thread_new(&thread_hooks, lt);
    lbk_task *t = lt->th ? sched_task_acquire(cur->gen) : NULL;
    if (!t) return luaL_error(L, "lubeck.spawn: out of memory");
    lua_pushvalue(L, -1);
    lt->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    thread_attach(lt->th, t);
    if (cur->req) host_req_add_task(cur->req, t);
    for (int i = 1; i <= nargs + 1; i++) lua_pushvalue(L, i);
    lua_xmove(L, t->co, nargs + 1);
    sched_start(t, nargs);
    return 1;
}

/* t:wait([timeout]) → true, results... | false, err */
static int l_wait(lua_State *L)
{
    lua_thread *lt = check_thread(L);
    double timeout = luaL_optnumber(L, 2, -1);
    if (thread_done(lt->th)) return push_outcome(L, lt);
    lbk_task *cur = sched_running(lt->gen->sched, L, "thread:wait");
    if (thread_task(lt->th) == cur) return luaL_error(L, "a thread cannot wait for itself");
    if (thread_join(lt->th, cur) != 0)
        return luaL_error(L, "another coroutine already waits for this thread");
    return sched_wait(L, cur, lt->th, timeout, thread_undo_join, 1);
}

static int l_status(lua_State *L)
{
    lua_thread *lt = check_thread(L);
    lua_pushstring(L, !thread_done(lt->th) ? "running" : thread_ok(lt->th) ? "dead" : "failed");
    return 1;
}

static int l_gc(lua_State *L)
{
    lua_thread *lt = check_thread(L);
    if (lt->results_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, lt->results_ref);
        lt->results_ref = LUA_NOREF;
    }
    thread_free(lt->th);
    lt->th = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lua_thread *lt = check_thread(L);
    lua_pushfstring(L, "lubeck.Thread (%s): %p", !thread_done(lt->th) ? "running" : "done", (void *)lt);
    return 1;
}

void thread_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = { { "wait", l_wait }, { "status", l_status }, { NULL, NULL } };
    host_lua_class(L, THREAD_MT, methods, l_gc, l_tostring);
    static const luaL_Reg functions[] = { { "spawn", l_spawn }, { NULL, NULL } };
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, functions, 1);
}
