/* What the unit tests that run Lua chunks as tasks share (test_scheduler,
 * test_thread, test_channel): a task loaded with a chunk, the loop run until no
 * task is left, and what a chunk wrote into its global table `seen`.
 * Include it after cmocka.h. */
#ifndef LUBECK_TASK_HARNESS_H
#define LUBECK_TASK_HARNESS_H

#include <stdio.h>
#include <lauxlib.h>
#include <lualib.h>

#include "scheduler.h"

/* sleep(seconds) → true; its upvalue is the scheduler. */
static inline int harness_sleep(lua_State *L)
{
    lbk_sched *s = lua_touserdata(L, lua_upvalueindex(1));
    return sched_sleep(L, sched_running(s, L, "sleep"), luaL_checknumber(L, 1));
}

/* The global name: fn with ud as its one upvalue. */
static inline void harness_set_fn(lua_State *L, const char *name, lua_CFunction fn, void *ud)
{
    lua_pushlightuserdata(L, ud);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

/* g's Lua state on scheduler s: the standard libraries, sleep(seconds) and an
 * empty table `seen` for chunks to write into. */
static inline lua_State *harness_open(lbk_gen *g, lbk_sched *s)
{
    g->sched = s;
    lua_State *L = g->L = luaL_newstate();
    luaL_openlibs(L);
    harness_set_fn(L, "sleep", harness_sleep, s);
    lua_newtable(L);
    lua_setglobal(L, "seen");
    return L;
}

/* A task of g with the chunk src loaded, not started yet. */
static inline lbk_task *harness_task(lbk_gen *g, const char *src)
{
    lbk_task *t = sched_task_acquire(g);
    assert_non_null(t);
    assert_int_equal(luaL_loadstring(t->co, src), 0);
    return t;
}

/* Runs loop until s has no task left, or 2000 turns. */
static inline void harness_run(struct ev_loop *loop, const lbk_sched *s)
{
    for (int i = 0; i < 2000 && s->ntasks > 0; i++) ev_run(loop, EVRUN_ONCE);
}

/* The value on top of L (above the table `seen`) as a string, "nil" when
 * absent; pops both. */
static inline const char *harness_seen_top(lua_State *L)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s", lua_isnil(L, -1) ? "nil" : lua_tostring(L, -1));
    lua_pop(L, 2);
    return buf;
}

/* seen[i] */
static inline const char *harness_seen_at(lua_State *L, int i)
{
    lua_getglobal(L, "seen");
    lua_rawgeti(L, -1, i);
    return harness_seen_top(L);
}

/* seen[key] */
static inline const char *harness_seen_field(lua_State *L, const char *key)
{
    lua_getglobal(L, "seen");
    lua_getfield(L, -1, key);
    return harness_seen_top(L);
}

#endif
