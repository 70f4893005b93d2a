/* dispatch: the reader's routing core (members, connection affinity, least in
 * flight, done reports, leaving, removal, front epochs). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dispatch.h"

static int join(dispatch *d, const char *name)
{
    return dispatch_join(d, name, strlen(name), 0);
}

static void plain_requests_go_to_the_least_busy_member_ties_in_turn(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a"), b = join(d, "b");
    dispatch_tag t1, t2, t3;
    int m1 = dispatch_route(d, 0, 1, 0, 0, &t1);
    int m2 = dispatch_route(d, 0, 2, 0, 0, &t2);
    assert_int_not_equal(m1, m2);            /* a tie goes in turn */
    dispatch_done(d, m1, &t1);               /* m1 idle now, m2 holds one */
    int m3 = dispatch_route(d, 0, 3, 0, 0, &t3);
    assert_int_equal(m3, m1);
    assert_true((m1 == a || m1 == b) && (m2 == a || m2 == b));
    dispatch_free(d);
}

static void every_message_of_a_busy_connection_goes_to_its_owner(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    join(d, "a");
    join(d, "b");
    dispatch_tag t, u;
    int owner = dispatch_route(d, 0, 7, 0, 0, &t);
    for (int i = 0; i < 10; i++) {           /* pipelined requests, frames, the notice */
        assert_int_equal(dispatch_route(d, 0, 7, i == 9, 0, &u), owner);
    }
    assert_int_equal(dispatch_member_at(d, owner)->inflight, 11);
    assert_int_equal(dispatch_conn_count(d), 1);
    for (int i = 0; i < 11; i++) dispatch_done(d, owner, &t);
    assert_int_equal(dispatch_conn_count(d), 0);   /* nothing in flight: forgotten */
    assert_int_equal(dispatch_member_at(d, owner)->inflight, 0);
    dispatch_free(d);
}

static void a_notice_for_a_connection_nobody_holds_goes_nowhere(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    join(d, "a");
    dispatch_tag t;
    assert_int_equal(dispatch_route(d, 0, 5, 1, 0, &t), -1);
    dispatch_free(d);
}

static void the_same_conn_id_on_two_fronts_is_two_connections(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    join(d, "a");
    join(d, "b");
    dispatch_tag t, u;
    int m1 = dispatch_route(d, 0, 9, 0, 0, &t);
    int m2 = dispatch_route(d, 1, 9, 0, 0, &u);
    assert_int_not_equal(m1, m2);
    assert_int_equal(dispatch_conn_count(d), 2);
    dispatch_free(d);
}

struct held { int n, websocket, leaving; uint32_t ids[8]; };
static void record(void *ud, int front, uint32_t conn_id, int websocket, int leaving)
{
    struct held *h = ud;
    (void)front;
    h->ids[h->n++] = conn_id;
    h->websocket += websocket;
    h->leaving += leaving;
}

static void a_removed_member_reports_what_it_held_and_gets_nothing_more(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a"), b = join(d, "b");
    dispatch_tag t;
    int got[4];
    for (uint32_t id = 1; id <= 4; id++) got[id - 1] = dispatch_route(d, 0, id, 0, id == 4, &t);
    int victim = got[0];
    struct held h = { 0 };
    dispatch_remove(d, victim, record, &h);
    assert_int_equal(h.n, 2);                /* two of four, dealt in turn */
    assert_int_equal(h.leaving, 0);
    for (uint32_t id = 10; id < 20; id++)
        assert_int_equal(dispatch_route(d, 0, id, 0, 0, &t), victim == a ? b : a);
    assert_int_equal(dispatch_find(d, victim == a ? "a" : "b", 1), -1);
    dispatch_free(d);
}

static void a_leaving_member_keeps_its_connections_but_gets_no_new_one(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a"), b = join(d, "b");
    dispatch_tag t;
    int owner = dispatch_route(d, 0, 1, 0, 1, &t);   /* a WebSocket session */
    int other = owner == a ? b : a;
    dispatch_leave(d, owner);
    assert_int_equal(dispatch_ready_count(d), 1);
    assert_int_equal(dispatch_route(d, 0, 1, 0, 0, &t), owner);   /* its next frame */
    for (uint32_t id = 2; id < 6; id++) assert_int_equal(dispatch_route(d, 0, id, 0, 0, &t), other);
    struct held h = { 0 };
    dispatch_remove(d, owner, record, &h);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.websocket, 1);
    assert_int_equal(h.leaving, 1);          /* answered 503, not 502 */
    dispatch_free(d);
}

static void a_front_reset_forgets_its_connections_and_old_reports(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a");
    dispatch_tag old, fresh;
    assert_int_equal(dispatch_route(d, 0, 1, 0, 0, &old), a);
    dispatch_front_reset(d, 0);
    assert_int_equal(dispatch_conn_count(d), 0);
    assert_int_equal(dispatch_route(d, 0, 1, 0, 0, &fresh), a);   /* the same id, a new client */
    assert_int_not_equal(old.epoch, fresh.epoch);
    dispatch_done(d, a, &old);               /* the old one's report lowers the count only */
    assert_int_equal(dispatch_conn_count(d), 1);
    assert_int_equal(dispatch_member_at(d, a)->inflight, 1);
    dispatch_done(d, a, &fresh);
    assert_int_equal(dispatch_member_at(d, a)->inflight, 0);
    dispatch_front_reset(d, 0);
    assert_int_equal(dispatch_conn_count(d), 0);
    dispatch_free(d);
}

/* Mongrel2's credits notice comes after the write, mostly once the request
 * has ended: it still reaches the member that wrote, and leaves the
 * connection known; the disconnect notice makes it forgotten. */
static void credits_after_the_request_reach_the_writer_until_the_disconnect(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a");
    int b = join(d, "b");
    dispatch_tag t, k;
    int writer = dispatch_route(d, 0, 3, DISPATCH_MESSAGE, 0, &t);
    dispatch_done(d, writer, &t);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dispatch_route(d, 0, 3, DISPATCH_CREDITS, 0, &k), writer);
        dispatch_done(d, writer, &k);
        assert_int_equal(dispatch_conn_count(d), 1);
    }
    dispatch_tag busy;   /* the writer is busier now: the next request goes to the other */
    dispatch_route(d, 0, 99, DISPATCH_MESSAGE, 0, &busy);
    int other = writer == a ? b : a;
    if (dispatch_member_at(d, writer)->inflight > dispatch_member_at(d, other)->inflight) {
        assert_int_equal(dispatch_route(d, 0, 3, DISPATCH_MESSAGE, 0, &t), other);
        dispatch_done(d, other, &t);
        writer = other;
    }
    assert_int_equal(dispatch_route(d, 0, 3, DISPATCH_NOTICE, 0, &k), writer);
    dispatch_done(d, writer, &k);
    assert_int_equal(dispatch_route(d, 0, 3, DISPATCH_CREDITS, 0, &k), -1);   /* forgotten */
    dispatch_free(d);
}

/* Mongrel2 sends no disconnect notice for a connection the member closed
 * itself: the member's done report says so, and the connection is forgotten
 * once nothing of it is in flight (else the table grows with every
 * "Connection: close" request). */
static void a_connection_the_member_closed_is_forgotten_when_idle(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a");
    dispatch_tag first, second, k;
    assert_int_equal(dispatch_route(d, 0, 5, DISPATCH_MESSAGE, 0, &first), a);
    assert_int_equal(dispatch_route(d, 0, 5, DISPATCH_MESSAGE, 0, &second), a);   /* pipelined */
    first.front |= DISPATCH_TAG_CLOSED;
    dispatch_done(d, a, &first);
    assert_int_equal(dispatch_conn_count(d), 1);   /* the second is still in flight */
    dispatch_done(d, a, &second);
    assert_int_equal(dispatch_conn_count(d), 0);
    assert_int_equal(dispatch_member_at(d, a)->inflight, 0);
    assert_int_equal(dispatch_route(d, 0, 5, DISPATCH_CREDITS, 0, &k), -1);   /* nothing to tell */
    /* Without the flag it stays known for its credits, as before. */
    assert_int_equal(dispatch_route(d, 0, 6, DISPATCH_MESSAGE, 0, &first), a);
    dispatch_done(d, a, &first);
    assert_int_equal(dispatch_conn_count(d), 1);
    dispatch_free(d);
}

static void no_ready_member_routes_nothing(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    dispatch_tag t;
    assert_int_equal(dispatch_route(d, 0, 1, 0, 0, &t), -1);
    int a = join(d, "a");
    dispatch_leave(d, a);
    assert_int_equal(dispatch_route(d, 0, 1, 0, 0, &t), -1);
    dispatch_free(d);
}

static void many_connections_grow_the_table(void **state)
{
    (void)state;
    dispatch *d = dispatch_new();
    int a = join(d, "a");
    dispatch_tag t;
    for (uint32_t id = 0; id < 50000; id++) dispatch_route(d, 0, id, 0, 0, &t);
    assert_int_equal(dispatch_conn_count(d), 50000);
    for (uint32_t id = 0; id < 50000; id++) {
        t.conn_id = id;
        dispatch_done(d, a, &t);
    }
    assert_int_equal(dispatch_conn_count(d), 50000);   /* known until their disconnects */
    for (uint32_t id = 0; id < 50000; id++) {
        assert_int_equal(dispatch_route(d, 0, id, DISPATCH_NOTICE, 0, &t), a);
        dispatch_done(d, a, &t);
    }
    assert_int_equal(dispatch_conn_count(d), 0);
    dispatch_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_requests_go_to_the_least_busy_member_ties_in_turn),
        cmocka_unit_test(every_message_of_a_busy_connection_goes_to_its_owner),
        cmocka_unit_test(a_notice_for_a_connection_nobody_holds_goes_nowhere),
        cmocka_unit_test(the_same_conn_id_on_two_fronts_is_two_connections),
        cmocka_unit_test(a_removed_member_reports_what_it_held_and_gets_nothing_more),
        cmocka_unit_test(a_leaving_member_keeps_its_connections_but_gets_no_new_one),
        cmocka_unit_test(a_front_reset_forgets_its_connections_and_old_reports),
        cmocka_unit_test(credits_after_the_request_reach_the_writer_until_the_disconnect),
        cmocka_unit_test(a_connection_the_member_closed_is_forgotten_when_idle),
        cmocka_unit_test(no_ready_member_routes_nothing),
        cmocka_unit_test(many_connections_grow_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
