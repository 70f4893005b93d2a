/* The scheduler (host/runtime/scheduler.c) on its own: a libev loop, one Lua
 * state as the generation, and hooks that record what the scheduler reports.
 * No request, no server: what a task does when it returns, raises, sleeps,
 * waits, times out, is woken, cancelled, refused or given up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "task_harness.h"

typedef struct fixture {
    struct ev_loop *loop;
    lbk_sched sched;
    lbk_gen gen;
    int ended, failed, idle;     /* what the hooks saw */
    char last_error[256];
    const char *refuse;          /* wait_begins refuses with nil, refuse */
    int waits_begun;
    int undone;                  /* undo calls on `object` */
    lbk_task *waiter;            /* the task waiting on `object` */
} fixture;

static int object;               /* what tasks wait on in these tests */
static fixture *F;               /* for the undo function, which gets only the task */

static void on_ended(void *ud, lbk_task *t, int failed)
{
    fixture *f = ud;
    f->ended++;
    if (failed) {
        f->failed++;
        const char *msg = lua_tostring(t->co, -1);
        snprintf(f->last_error, sizeof f->last_error, "%s", msg ? msg : "?");
    }
}

static int on_wait(void *ud, lbk_task *t, lua_State *L)
{
    fixture *f = ud;
    f->waits_begun++;
    if (!f->refuse) return 0;
    lua_pushnil(L);
    lua_pushstring(L, f->refuse);
    return 2;
}

static void on_idle(void *ud, lbk_gen *g)
{
    fixture *f = ud;
    f->idle++;
}

static void undo(lbk_task *t)
{
    assert_ptr_equal(t->wait_on, &object);
    F->undone++;
    F->waiter = NULL;
}

/* wait([timeout]) → what the test wakes it with | nil, "timeout" | nil, reason */
static int l_wait(lua_State *L)
{
    fixture *f = lua_touserdata(L, lua_upvalueindex(1));
    lbk_task *t = sched_running(&f->sched, L, "wait");
    f->waiter = t;
    return sched_wait(L, t, &object, luaL_optnumber(L, 1, -1), undo, 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    F = f;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    static const lbk_sched_hooks hooks = {
        .task_ended = on_ended, .wait_begins = on_wait, .gen_idle = on_idle };
    sched_init(&f->sched, f->loop, &hooks, f);
    harness_set_fn(harness_open(&f->gen, &f->sched), "wait", l_wait, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sched_stop(&f->sched);
    sched_gen_close(&f->gen);
    lua_close(f->gen.L);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

/* Starts a task running the chunk src (compiled in the generation's state). */
static lbk_task *start(fixture *f, const char *src)
{
    lbk_task *t = harness_task(&f->gen, src);
    sched_start(t, 0);
    return t;
}

static void run_loop(fixture *f) { harness_run(f->loop, &f->sched); }
static const char *seen(fixture *f, int i) { return harness_seen_at(f->gen.L, i); }

static void returning_task_ends_once_and_goes_back_to_the_pool(void **state)
{
    fixture *f = *state;
    lbk_task *t = start(f, "seen[1] = 'ran'");
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->failed, 0);
    assert_int_equal(f->sched.ntasks, 0);
    assert_int_equal(f->gen.tasks, 0);
    assert_string_equal(seen(f, 1), "ran");
    lbk_task *again = sched_task_acquire(&f->gen);
    assert_ptr_equal(again, t);   /* reused */
    sched_task_drop(again);
}

static void raising_task_is_reported_failed_with_its_error(void **state)
{
    fixture *f = *state;
    start(f, "error('broken', 0)");
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->failed, 1);
    assert_string_equal(f->last_error, "broken");
    assert_int_equal(f->sched.ntasks, 0);
}

static void sleep_resumes_with_true_after_the_loop_runs(void **state)
{
    fixture *f = *state;
    start(f, "seen[1] = tostring(sleep(0.01)); seen[2] = 'after'");
    assert_int_equal(f->ended, 0);
    assert_string_equal(seen(f, 2), "nil");   /* suspended until the timer */
    assert_int_equal(f->waits_begun, 1);
    run_loop(f);
    assert_int_equal(f->ended, 1);
    assert_string_equal(seen(f, 1), "true");
    assert_string_equal(seen(f, 2), "after");
}

static void a_woken_task_runs_on_the_next_iteration_with_its_values(void **state)
{
    fixture *f = *state;
    start(f, "seen[1] = wait()");
    assert_non_null(f->waiter);
    assert_true(sched_waits_on(f->waiter, &object));
    lbk_task *t = f->waiter;
    f->waiter = NULL;
    lua_pushstring(t->co, "payload");
    sched_wake(t, 1);
    assert_int_equal(f->ended, 0);           /* not inside the waker */
    run_loop(f);
    assert_int_equal(f->ended, 1);
    assert_string_equal(seen(f, 1), "payload");
    assert_int_equal(f->undone, 0);          /* a wake is not an undo */
}

static void a_completed_task_runs_at_once(void **state)
{
    fixture *f = *state;
    start(f, "seen[1] = wait()");
    lbk_task *t = f->waiter;
    lua_pushstring(t->co, "now");
    sched_complete(t, 1);
    assert_int_equal(f->ended, 1);
    assert_string_equal(seen(f, 1), "now");
}

static void a_timeout_undoes_the_wait_and_returns_nil_timeout(void **state)
{
    fixture *f = *state;
    start(f, "local v, err = wait(0.01); seen[1] = tostring(v); seen[2] = err");
    run_loop(f);
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->undone, 1);
    assert_string_equal(seen(f, 1), "nil");
    assert_string_equal(seen(f, 2), "timeout");
}

static void cancel_undoes_the_wait_and_returns_nil_reason(void **state)
{
    fixture *f = *state;
    start(f, "local v, err = wait(5); seen[1] = tostring(v); seen[2] = err");
    sched_cancel(f->waiter, "closed");
    assert_int_equal(f->undone, 1);
    assert_int_equal(f->ended, 1);
    assert_string_equal(seen(f, 1), "nil");
    assert_string_equal(seen(f, 2), "closed");
}

static void cancel_of_a_running_or_ended_task_does_nothing(void **state)
{
    fixture *f = *state;
    lbk_task *t = sched_task_acquire(&f->gen);
    sched_cancel(t, "closed");   /* acquired, never started: not waiting */
    assert_int_equal(f->ended, 0);
    assert_int_equal(f->undone, 0);
    sched_task_drop(t);
}

static void a_refused_wait_returns_the_refusal_without_suspending(void **state)
{
    fixture *f = *state;
    f->refuse = "timeout";
    start(f, "local v, err = wait(); seen[1] = tostring(v); seen[2] = err");
    assert_int_equal(f->ended, 1);
    assert_int_equal(f->undone, 1);          /* the object still hears it is let go */
    assert_string_equal(seen(f, 1), "nil");
    assert_string_equal(seen(f, 2), "timeout");
}

static void unwait_leaves_the_task_suspended_and_drop_frees_it(void **state)
{
    fixture *f = *state;
    f->gen.retired = 1;
    start(f, "wait(0.01); seen[1] = 'resumed'");
    lbk_task *t = f->waiter;
    sched_unwait(t);
    assert_int_equal(f->undone, 1);
    assert_false(sched_waits_on(t, &object));
    for (int i = 0; i < 5; i++) ev_run(f->loop, EVRUN_NOWAIT);   /* no timer left */
    assert_string_equal(seen(f, 1), "nil");
    assert_int_equal(f->idle, 0);
    sched_task_drop(t);
    assert_int_equal(f->sched.ntasks, 0);
    assert_int_equal(f->idle, 1);            /* a retired generation's last task */
    assert_int_equal(f->ended, 0);           /* dropped, never ended */
}

static void a_bare_yield_lets_the_others_run_first(void **state)
{
    fixture *f = *state;
    start(f, "seen[#seen + 1] = 'a1'; coroutine.yield(); seen[#seen + 1] = 'a2'");
    start(f, "seen[#seen + 1] = 'b1'; coroutine.yield(); seen[#seen + 1] = 'b2'");
    assert_int_equal(f->waits_begun, 0);     /* not a wait: no hook */
    run_loop(f);
    assert_string_equal(seen(f, 1), "a1");
    assert_string_equal(seen(f, 2), "b1");
    assert_string_equal(seen(f, 3), "a2");
    assert_string_equal(seen(f, 4), "b2");
    assert_int_equal(f->ended, 2);
}

static void waiting_outside_a_task_is_a_lua_error(void **state)
{
    fixture *f = *state;
    lua_State *L = f->gen.L;
    assert_int_not_equal(luaL_dostring(L, "wait()"), 0);
    assert_non_null(strstr(lua_tostring(L, -1), "only a request's code can wait"));
    lua_pop(L, 1);
}

/* A wait inside a coroutine the handler made yields the marker; passed up (as
 * lubeck.coroutine does), the task waits, and the results come back down. */
static void a_wait_in_the_handlers_own_coroutine_is_passed_up(void **state)
{
    fixture *f = *state;
    lua_pushlightuserdata(f->gen.L, sched_wait_marker());
    lua_setglobal(f->gen.L, "MARKER");
    start(f, "local co = coroutine.create(function() return wait() end)\n"
             "local _, m = coroutine.resume(co)\n"
             "seen[1] = tostring(m == MARKER)\n"
             "local v = coroutine.yield(m)\n"
             "local _, got = coroutine.resume(co, v)\n"
             "seen[2] = got");
    assert_string_equal(seen(f, 1), "true");
    assert_non_null(f->waiter);
    assert_true(sched_waits_on(f->waiter, &object));
    lbk_task *t = f->waiter;
    f->waiter = NULL;
    lua_pushstring(t->co, "deep");
    sched_wake(t, 1);
    run_loop(f);
    assert_int_equal(f->ended, 1);
    assert_string_equal(seen(f, 2), "deep");
}

static void a_retired_generation_is_idle_after_its_last_task(void **state)
{
    fixture *f = *state;
    start(f, "sleep(0.01)");
    start(f, "sleep(0.02)");
    f->gen.retired = 1;
    run_loop(f);
    assert_int_equal(f->ended, 2);
    assert_int_equal(f->idle, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(returning_task_ends_once_and_goes_back_to_the_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(raising_task_is_reported_failed_with_its_error, setup, teardown),
        cmocka_unit_test_setup_teardown(sleep_resumes_with_true_after_the_loop_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(a_woken_task_runs_on_the_next_iteration_with_its_values, setup, teardown),
        cmocka_unit_test_setup_teardown(a_completed_task_runs_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_timeout_undoes_the_wait_and_returns_nil_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_undoes_the_wait_and_returns_nil_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_of_a_running_or_ended_task_does_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_wait_returns_the_refusal_without_suspending, setup, teardown),
        cmocka_unit_test_setup_teardown(unwait_leaves_the_task_suspended_and_drop_frees_it, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bare_yield_lets_the_others_run_first, setup, teardown),
        cmocka_unit_test_setup_teardown(waiting_outside_a_task_is_a_lua_error, setup, teardown),
        cmocka_unit_test_setup_teardown(a_wait_in_the_handlers_own_coroutine_is_passed_up, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retired_generation_is_idle_after_its_last_task, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
