/* Parked requests (host/server/park.c) on a bare host: requests made by hand,
 * no Lua, no sockets. Who a disconnect notice reaches, in what order deadlines
 * come due, and what leaving the tables undoes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "host.h"

#define SENDER_A "54c6755b-9628-40a4-9a2d-cc82a816345e"
#define SENDER_B "0f0e6d1c-3b6a-4f2e-9d55-1a2b3c4d5e6f"
#define NREQS 6

typedef struct fixture {
    lubeck h;
    lbk_gen gen;
    lbk_req *reqs[NREQS];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->h.loop = ev_loop_new(EVFLAG_AUTO);
    f->h.quiet = 1;
    assert_int_equal(host_park_init(&f->h), 0);
    f->gen.host = &f->h;
    for (uint32_t i = 0; i < NREQS; i++) {
        lbk_req *r = f->reqs[i] = calloc(1, sizeof *r);
        r->index = i;
        r->serial = 1;
        r->live = 1;
        r->gen = &f->gen;
        r->done = 1;   /* answered already: a deadline only cancels (no Lua runs) */
        r->m2.sender = slice_make(SENDER_A, strlen(SENDER_A));
        r->m2.method = SLICE_LIT("GET");
        r->m2.path = SLICE_LIT("/");
    }
    f->h.reqs = f->reqs;
    f->h.nreqs = NREQS;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    host_park_free(&f->h);
    for (int i = 0; i < NREQS; i++) free(f->reqs[i]);
    ev_loop_destroy(f->h.loop);
    free(f);
    return 0;
}

static void park(fixture *f, int i, uint32_t conn_id, const char *sender, double started)
{
    lbk_req *r = f->reqs[i];
    r->m2.conn_id = conn_id;
    r->m2.sender = slice_make(sender, strlen(sender));
    r->started = started;
    host_park(&f->h, r);
}

static void a_disconnect_cancels_only_that_senders_connection(void **state)
{
    fixture *f = *state;
    park(f, 0, 7, SENDER_A, 0);
    park(f, 1, 7, SENDER_A, 0);   /* a second request on the same connection */
    park(f, 2, 7, SENDER_B, 0);   /* the same id from another Mongrel2 */
    park(f, 3, 8, SENDER_A, 0);
    park(f, 4, 7 + 1024, SENDER_A, 0);   /* same bucket, another id */
    assert_int_equal(host_parked(&f->h), 5);
    host_cancel_conn(&f->h, slice_make(SENDER_A, strlen(SENDER_A)), 7);
    assert_string_equal(f->reqs[0]->cancelled, "closed");
    assert_string_equal(f->reqs[1]->cancelled, "closed");
    assert_null(f->reqs[2]->cancelled);
    assert_null(f->reqs[3]->cancelled);
    assert_null(f->reqs[4]->cancelled);
}

static void a_request_never_parked_is_not_found(void **state)
{
    fixture *f = *state;
    f->reqs[0]->m2.conn_id = 9;   /* answered without waiting: never parked */
    host_cancel_conn(&f->h, slice_make(SENDER_A, strlen(SENDER_A)), 9);
    assert_null(f->reqs[0]->cancelled);
    assert_int_equal(host_parked(&f->h), 0);
}

static void unpark_takes_it_out_of_both_tables(void **state)
{
    fixture *f = *state;
    f->gen.request_timeout = 0.01;
    park(f, 0, 7, SENDER_A, ev_now(f->h.loop));
    host_park(&f->h, f->reqs[0]);   /* parking twice is once */
    assert_int_equal(host_parked(&f->h), 1);
    host_unpark(&f->h, f->reqs[0]);
    assert_int_equal(host_parked(&f->h), 0);
    host_cancel_conn(&f->h, slice_make(SENDER_A, strlen(SENDER_A)), 7);
    assert_null(f->reqs[0]->cancelled);
    ev_run(f->h.loop, EVRUN_NOWAIT);   /* no deadline timer left running */
    assert_int_equal(ev_run(f->h.loop, EVRUN_NOWAIT), 0);
}

static void deadlines_come_due_in_order_of_receipt_plus_timeout(void **state)
{
    fixture *f = *state;
    f->gen.request_timeout = 0.05;
    double now = ev_now(f->h.loop);
    park(f, 0, 1, SENDER_A, now + 0.2);   /* received last, parked first */
    park(f, 1, 2, SENDER_A, now);
    park(f, 2, 3, SENDER_A, now + 0.1);
    f->reqs[3]->ws = (struct lbk_ws_conn *)1;   /* a WebSocket session has no deadline */
    park(f, 3, 4, SENDER_A, now);
    for (int i = 0; i < 200 && !f->reqs[1]->cancelled; i++) ev_run(f->h.loop, EVRUN_ONCE);
    assert_string_equal(f->reqs[1]->cancelled, "timeout");
    assert_null(f->reqs[0]->cancelled);   /* not yet due */
    for (int i = 0; i < 200 && !f->reqs[0]->cancelled; i++) ev_run(f->h.loop, EVRUN_ONCE);
    assert_string_equal(f->reqs[2]->cancelled, "timeout");
    assert_string_equal(f->reqs[0]->cancelled, "timeout");
    assert_null(f->reqs[3]->cancelled);
    assert_int_equal(host_parked(&f->h), 4);   /* still findable by connection */
    f->reqs[3]->ws = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_disconnect_cancels_only_that_senders_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_never_parked_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(unpark_takes_it_out_of_both_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(deadlines_come_due_in_order_of_receipt_plus_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
