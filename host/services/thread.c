#include "thread.h"

#include <lauxlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"

#define THREAD_MT "lubeck.Thread"

struct lbk_thread {
    lbk_gen *gen;
    lbk_task *task;          /* while it runs */
    lbk_task *joiner;        /* the task in t:wait() */
    int self_ref;            /* keeps the userdata alive while it runs */
    int done, ok;
    int results_ref;         /* { n = N, ... } results, or { n = 1, err } */
};

static lbk_thread *check_thread(lua_State *L)
{
    return luaL_checkudata(L, 1, THREAD_MT);
}

/* Pushes ok, results... onto L; returns the count. */
static int push_outcome(lua_State *L, lbk_thread *th)
{
    lua_pushboolean(L, th->ok);
    lua_rawgeti(L, LUA_REGISTRYINDEX, th->results_ref);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (int i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n + 1;
}

void thread_ended(lbk_task *t, int failed)
{
    lbk_thread *th = t->thread;
    lua_State *co = t->co;
    t->thread = NULL;
    th->task = NULL;
    th->done = 1;
    th->ok = !failed;
    if (failed) {
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(th->gen->L, co, msg ? msg : "(error object is not a string)", 0);
        log_error("error in a spawned thread: %s", lua_tostring(th->gen->L, -1));
        lua_pop(th->gen->L, 1);
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
    th->results_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    if (th->joiner) {
        lbk_task *j = th->joiner;
        th->joiner = NULL;
        sched_wake(j, push_outcome(j->co, th));
    }
    luaL_unref(th->gen->L, LUA_REGISTRYINDEX, th->self_ref);
    th->self_ref = LUA_NOREF;
}

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
    lbk_task *t = sched_task_acquire(cur->gen);
    if (!t) return luaL_error(L, "lubeck.spawn: out of memory");
    lbk_thread *th = lua_newuserdata(L, sizeof *th);
    memset(th, 0, sizeof *th);
    th->gen = cur->gen;
    th->results_ref = LUA_NOREF;
    luaL_getmetatable(L, THREAD_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    th->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    th->task = t;
    t->thread = th;
    if (cur->req) host_req_add_task(cur->req, t);
    for (int i = 1; i <= nargs + 1; i++) lua_pushvalue(L, i);
    lua_xmove(L, t->co, nargs + 1);
    sched_start(t, nargs);
    return 1;
}

static void undo_join(lbk_task *t)
{
    lbk_thread *th = t->wait_on;
    if (th && th->joiner == t) th->joiner = NULL;
}

/* t:wait([timeout]) → true, results... | false, err */
static int l_wait(lua_State *L)
{
    lbk_thread *th = check_thread(L);
    double timeout = luaL_optnumber(L, 2, -1);
    if (th->done) return push_outcome(L, th);
    lbk_task *cur = sched_running(th->gen->sched, L, "thread:wait");
    if (th->task == cur) return luaL_error(L, "a thread cannot wait for itself");
    if (th->joiner) return luaL_error(L, "another coroutine already waits for this thread");
    th->joiner = cur;
    return sched_wait(L, cur, th, timeout, undo_join, 1);
}

static int l_status(lua_State *L)
{
    lbk_thread *th = check_thread(L);
    lua_pushstring(L, !th->done ? "running" : th->ok ? "dead" : "failed");
    return 1;
}

static int l_gc(lua_State *L)
{
    lbk_thread *th = check_thread(L);
    if (th->results_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, th->results_ref);
        th->results_ref = LUA_NOREF;
    }
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_thread *th = check_thread(L);
    lua_pushfstring(L, "lubeck.Thread (%s): %p", !th->done ? "running" : "done", (void *)th);
    return 1;
}

void thread_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = { { "wait", l_wait }, { "status", l_status }, { NULL, NULL } };
    host_lua_class(L, THREAD_MT, methods, l_gc, l_tostring);
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_spawn, 1);
    lua_setfield(L, -2, "spawn");
}
