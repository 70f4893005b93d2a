/* Channels (host/services/channel.c) and their Lua face (host/lua/lua_channel.c)
 * on a bare host: a loop, the scheduler, one Lua state and the channels
 * object, no sockets. Who a publish wakes, with what; what a timeout, a cancel
 * and a stop leave behind; the Redis url's rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "channel.h"
#include "lua_channel.h"
#include "task_harness.h"

typedef struct fixture {
    lubeck h;
    lbk_gen gen;
    int ended;
} fixture;

static void on_ended(void *ud, lbk_task *t, int failed)
{
    fixture *f = ud;
    f->ended++;
    if (failed) fail_msg("a task raised: %s", lua_tostring(t->co, -1));
}

/* A binding of the test's own: the service hands a payload to a waiter only
 * through the function the waiter joined with (and wakes it with as many
 * values as that pushed). */
static int push_tagged(lbk_task *t, const char *payload, size_t len)
{
    lua_pushlstring(t->co, payload, len);
    lua_pushliteral(t->co, "tagged");
    return 2;
}

/* wait_tagged(name) → payload, "tagged" */
static int wait_tagged(lua_State *L)
{
    fixture *f = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    lbk_task *t = sched_running(&f->h.sched, L, "wait_tagged");
    void *c = channels_join(f->h.channels, t, name, len, push_tagged);
    return sched_wait(L, t, c, -1, channels_leave, 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->h.loop = ev_loop_new(EVFLAG_AUTO);
    f->h.channels = channels_new(f->h.loop);
    assert_non_null(f->h.channels);
    static const lbk_sched_hooks hooks = { .task_ended = on_ended };
    sched_init(&f->h.sched, f->h.loop, &hooks, f);
    f->gen.host = &f->h;
    lua_State *L = harness_open(&f->gen, &f->h.sched);
    lua_newtable(L);
    channel_open(L, &f->gen);
    lua_setglobal(L, "channel");   /* what lubeck.core.channel holds */
    harness_set_fn(L, "wait_tagged", wait_tagged, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    channels_free(f->h.channels);
    sched_stop(&f->h.sched);
    sched_gen_close(&f->gen);
    lua_close(f->gen.L);
    ev_loop_destroy(f->h.loop);
    free(f);
    return 0;
}

static lbk_task *start(fixture *f, const char *src)
{
    lbk_task *t = harness_task(&f->gen, src);
    sched_start(t, 0);
    return t;
}

static void run_loop(fixture *f) { harness_run(f->h.loop, &f->h.sched); }
static const char *seen(fixture *f, const char *key) { return harness_seen_field(f->gen.L, key); }

#define WAITER(key, chan, timeout)                                                      \
    "local v, err = channel.wait('" chan "'" timeout ")\n"                           \
    "seen['" key "'] = tostring(v) .. '/' .. tostring(err)"

static void a_publish_wakes_every_waiter_of_its_channel_and_no_other(void **state)
{
    fixture *f = *state;
    start(f, WAITER("a", "news", ""));
    start(f, WAITER("b", "news", ""));
    start(f, WAITER("c", "other", ", 0.05"));
    assert_int_equal(channels_waiters(f->h.channels), 3);
    start(f, "seen.woken = channel.publish('news', 'hello')");
    assert_string_equal(seen(f, "woken"), "2");
    assert_string_equal(seen(f, "a"), "nil");   /* woken, run on the next iteration */
    run_loop(f);
    assert_string_equal(seen(f, "a"), "hello/nil");
    assert_string_equal(seen(f, "b"), "hello/nil");
    assert_string_equal(seen(f, "c"), "nil/timeout");
    assert_int_equal(channels_waiters(f->h.channels), 0);
}

static void a_publish_with_no_waiter_is_lost(void **state)
{
    fixture *f = *state;
    assert_int_equal(channels_deliver(f->h.channels, "news", 4, "early", 5), 0);
    start(f, WAITER("a", "news", ", 0.02"));
    run_loop(f);
    assert_string_equal(seen(f, "a"), "nil/timeout");   /* channels keep no backlog */
}

static void a_timed_out_waiter_is_unlinked(void **state)
{
    fixture *f = *state;
    start(f, WAITER("a", "news", ", 0.01"));
    run_loop(f);
    assert_string_equal(seen(f, "a"), "nil/timeout");
    assert_int_equal(channels_waiters(f->h.channels), 0);
    assert_int_equal(channels_deliver(f->h.channels, "news", 4, "late", 4), 0);
}

static void a_cancelled_waiter_is_unlinked_and_told_why(void **state)
{
    fixture *f = *state;
    lbk_task *t = start(f, WAITER("a", "news", ""));
    start(f, WAITER("b", "news", ""));
    sched_cancel(t, "closed");
    assert_string_equal(seen(f, "a"), "nil/closed");
    assert_int_equal(channels_waiters(f->h.channels), 1);
    assert_int_equal(channels_deliver(f->h.channels, "news", 4, "x", 1), 1);
    run_loop(f);
    assert_string_equal(seen(f, "b"), "x/nil");
}

static void stopping_wakes_every_waiter_and_refuses_new_ones(void **state)
{
    fixture *f = *state;
    start(f, WAITER("a", "news", ""));
    start(f, WAITER("b", "other", ""));
    f->h.stopping = 1;
    channels_wake_all(f->h.channels, "closing");
    run_loop(f);
    assert_string_equal(seen(f, "a"), "nil/closing");
    assert_string_equal(seen(f, "b"), "nil/closing");
    start(f, WAITER("c", "news", ""));
    assert_string_equal(seen(f, "c"), "nil/closing");   /* at once */
    assert_int_equal(channels_waiters(f->h.channels), 0);
}

static void a_woken_waiter_that_waits_again_needs_a_new_publish(void **state)
{
    fixture *f = *state;
    start(f, "seen.first = channel.wait('news')\n"
             "seen.second = channel.wait('news')");
    assert_int_equal(channels_deliver(f->h.channels, "news", 4, "one", 3), 1);
    run_loop(f);
    assert_string_equal(seen(f, "first"), "one");
    assert_int_equal(channels_waiters(f->h.channels), 1);
    assert_int_equal(channels_deliver(f->h.channels, "news", 4, "two", 3), 1);
    run_loop(f);
    assert_string_equal(seen(f, "second"), "two");
    assert_int_equal(f->ended, 1);
}

static void a_waiter_gets_what_its_push_function_gives(void **state)
{
    fixture *f = *state;
    start(f, "local v, tag = wait_tagged('news')\n"
             "seen.tagged = tostring(v) .. '/' .. tostring(tag)");
    assert_int_equal(channels_waiters(f->h.channels), 1);
    channels_deliver_cb(f->h.channels, "news", 4, "hi", 2);   /* as the bus or pg.listen call it */
    run_loop(f);
    assert_string_equal(seen(f, "tagged"), "hi/tagged");
    assert_int_equal(channels_waiters(f->h.channels), 0);
}

static void the_first_redis_url_stays_and_a_bad_one_is_refused(void **state)
{
    fixture *f = *state;
    char err[256];
    assert_null(channels_redis_url(f->h.channels));
    assert_int_equal(channels_set_redis(f->h.channels, "redis://cli:7000/1", err, sizeof err), 0);
    start(f, "seen.url, seen.err = channel.redis('redis://app:6379/2')");
    assert_string_equal(seen(f, "url"), "redis://cli:7000/1");   /* --redis wins over the app's */
    start(f, "seen.url, seen.err = channel.redis('http://nope')");
    assert_string_equal(seen(f, "url"), "nil");
    assert_non_null(strstr(seen(f, "err"), "redis://"));
    assert_int_equal(channels_offer_redis(f->h.channels, "redis://", err, sizeof err), -1);
    assert_non_null(strstr(err, "no host"));
    assert_string_equal(channels_redis_url(f->h.channels), "redis://cli:7000/1");
}

static void without_a_redis_url_there_is_no_link_and_a_publish_stays_here(void **state)
{
    fixture *f = *state;
    char err[256];
    assert_int_equal(channels_start_redis(f->h.channels, err, sizeof err), 0);
    start(f, WAITER("a", "news", ""));
    assert_int_equal(channels_publish(f->h.channels, "news", 4, "local", 5), 1);
    run_loop(f);
    assert_string_equal(seen(f, "a"), "local/nil");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_publish_wakes_every_waiter_of_its_channel_and_no_other, setup, teardown),
        cmocka_unit_test_setup_teardown(a_publish_with_no_waiter_is_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(a_timed_out_waiter_is_unlinked, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_waiter_is_unlinked_and_told_why, setup, teardown),
        cmocka_unit_test_setup_teardown(stopping_wakes_every_waiter_and_refuses_new_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(a_woken_waiter_that_waits_again_needs_a_new_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(a_waiter_gets_what_its_push_function_gives, setup, teardown),
        cmocka_unit_test_setup_teardown(the_first_redis_url_stays_and_a_bad_one_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(without_a_redis_url_there_is_no_link_and_a_publish_stays_here, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
