/* A spawned thread's record (host/services/thread.c) on a real scheduler, with
 * no server and no lubeck.Thread: the task-ended hook hands the end of a
 * thread's task to thread_ended, as the server's does. What the record must
 * do: tell its owner in order (keep the results, hand them to the joiner,
 * let go), wake the one task joined on it with those values, refuse a second
 * joiner, and forget a joiner that gave up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "task_harness.h"
#include "thread.h"

typedef struct fixture {
    struct ev_loop *loop;
    lbk_sched sched;
    lbk_gen gen;
    lbk_thread *th;
    char calls[128];             /* the hooks, in the order they came: k(ept) p(ushed) f(inished) */
    int kept_failed;
} fixture;

static void task_ended(void *ud, lbk_task *t, int failed)
{
    if (t->thread) thread_ended(t, failed);
}

static void keep_results(void *ud, lbk_task *t, int failed)
{
    fixture *f = ud;
    strcat(f->calls, "k");
    f->kept_failed = failed;
}

static int push_outcome(void *ud, lbk_task *joiner)
{
    fixture *f = ud;
    strcat(f->calls, "p");
    lua_pushstring(joiner->co, "joined");
    lua_pushinteger(joiner->co, 42);
    return 2;
}

static void finished(void *ud)
{
    fixture *f = ud;
    strcat(f->calls, "f");
}

static const lbk_thread_hooks hooks = { keep_results, push_outcome, finished };

/* join([timeout]) → what push_outcome gave | false, "timeout" | nil, "busy" */
static int l_join(lua_State *L)
{
    fixture *f = lua_touserdata(L, lua_upvalueindex(1));
    lbk_task *t = sched_running(&f->sched, L, "join");
    if (thread_join(f->th, t) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "busy");
        return 2;
    }
    return sched_wait(L, t, f->th, luaL_optnumber(L, 1, -1), thread_undo_join, 1);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    static const lbk_sched_hooks sched_hooks = { .task_ended = task_ended };
    sched_init(&f->sched, f->loop, &sched_hooks, f);
    harness_set_fn(harness_open(&f->gen, &f->sched), "join", l_join, f);
    f->th = thread_new(&hooks, f);
    assert_non_null(f->th);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    thread_free(f->th);
    sched_stop(&f->sched);
    sched_gen_close(&f->gen);
    lua_close(f->gen.L);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static lbk_task *start(fixture *f, const char *src) { return harness_task(&f->gen, src); }

/* Starts the thread itself: a task that thread_attach ties to the record. */
static lbk_task *start_thread(fixture *f, const char *src)
{
    lbk_task *t = start(f, src);
    thread_attach(f->th, t);
    assert_ptr_equal(thread_task(f->th), t);
    sched_start(t, 0);
    return t;
}

static void run_loop(fixture *f) { harness_run(f->loop, &f->sched); }
static const char *seen(fixture *f, int i) { return harness_seen_at(f->gen.L, i); }

static void a_joiner_gets_what_the_owner_hands_it_in_order(void **state)
{
    fixture *f = *state;
    start_thread(f, "sleep(0.01) return 'done'");
    assert_false(thread_done(f->th));
    sched_start(start(f, "seen[1], seen[2] = join()"), 0);
    assert_string_equal(seen(f, 1), "nil");   /* waiting */
    run_loop(f);
    assert_string_equal(f->calls, "kpf");
    assert_true(thread_done(f->th));
    assert_true(thread_ok(f->th));
    assert_null(thread_task(f->th));
    assert_string_equal(seen(f, 1), "joined");
    assert_string_equal(seen(f, 2), "42");
}

static void a_thread_that_raises_ends_failed_and_nobody_joined(void **state)
{
    fixture *f = *state;
    start_thread(f, "error('broken', 0)");
    assert_string_equal(f->calls, "kf");   /* no joiner: nothing pushed */
    assert_int_equal(f->kept_failed, 1);
    assert_true(thread_done(f->th));
    assert_false(thread_ok(f->th));
}

static void a_second_joiner_is_refused(void **state)
{
    fixture *f = *state;
    start_thread(f, "sleep(0.01)");
    sched_start(start(f, "seen[1] = join()"), 0);
    sched_start(start(f, "seen[2], seen[3] = join()"), 0);
    assert_string_equal(seen(f, 3), "busy");
    run_loop(f);
    assert_string_equal(seen(f, 1), "joined");
}

static void a_joiner_that_timed_out_is_forgotten(void **state)
{
    fixture *f = *state;
    start_thread(f, "sleep(0.05)");
    /* the first gives up after 10 ms; the second joins after it and gets the end */
    sched_start(start(f, "local ok, err = join(0.01) seen[1], seen[2] = tostring(ok), err"), 0);
    sched_start(start(f, "sleep(0.02) seen[3] = join()"), 0);
    run_loop(f);
    assert_string_equal(seen(f, 1), "false");
    assert_string_equal(seen(f, 2), "timeout");
    assert_string_equal(seen(f, 3), "joined");
    assert_string_equal(f->calls, "kpf");   /* handed over once, to the second */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_joiner_gets_what_the_owner_hands_it_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_thread_that_raises_ends_failed_and_nobody_joined, setup, teardown),
        cmocka_unit_test_setup_teardown(a_second_joiner_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_joiner_that_timed_out_is_forgotten, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
