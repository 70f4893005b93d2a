/* What the unit tests that run Lua chunks as tasks share (test_scheduler,
 * test_thread, test_channel): a task loaded with a chunk, the loop run until no
 * task is left, and what a chunk wrote into its global table `seen`.
 * Include it after cmocka.h. */
#ifndef LUBECK_TASK_HARNESS_H
#define LUBECK_TASK_HARNESS_H

#include <stdio.h>
#include <lauxlib.h>

#include "scheduler.h"

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
