/* The per-connection credit window of host/server/flow.c, on a host whose replies go
 * to a capture instead of Mongrel2: what leaves when, in what pieces and order,
 * and what waiters hear. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow.h"

#define SENDER "54c6755b-9628-40a4-9a2d-cc82a816345e"
#define MAX_SENT 64

typedef struct capture {
    int n;
    char *frames[MAX_SENT];
    size_t lens[MAX_SENT];
} capture;

static void capture_send(lubeck *h, const void *frame, size_t len, void *ud)
{
    (void)h;
    capture *c = ud;
    assert_true(c->n < MAX_SENT);
    c->frames[c->n] = malloc(len + 1);
    memcpy(c->frames[c->n], frame, len);
    c->frames[c->n][len] = '\0';
    c->lens[c->n++] = len;
}

/* The body of captured frame i ("SENDER LEN:IDS, BODY"), and its ids. */
static const char *body_of(capture *c, int i, size_t *n, char *ids, size_t idlen)
{
    char *f = c->frames[i];
    char *colon = strchr(f, ':'), *comma = strchr(f, ',');
    snprintf(ids, idlen, "%.*s", (int)(comma - colon - 1), colon + 1);
    *n = c->lens[i] - (size_t)(comma + 2 - f);
    return comma + 2;
}

typedef struct fixture {
    lubeck h;
    capture cap;
} fixture;

static fixture *fixture_new(const char *window)
{
    fixture *f = calloc(1, sizeof *f);
    f->h.loop = ev_loop_new(EVFLAG_AUTO);
    f->h.send_fn = capture_send;
    f->h.send_ud = &f->cap;
    if (window) {
        char head[128], frame[256];
        snprintf(head, sizeof head, "{\"PATH\":\"/\",\"DOWNLOAD_CREDITS\":\"%s\",\"METHOD\":\"GET\"}",
                 window);
        int n = snprintf(frame, sizeof frame, SENDER " 7 / %zu:%s,0:,", strlen(head), head);
        m2_request m;
        memset(&m, 0, sizeof m);
        const char *err;
        assert_int_equal(m2_parse(frame, (size_t)n, &m, &err), 0);
        flow_request_seen(&f->h, &m);
        m2_headers_free(&m.headers);
    }
    return f;
}

static void fixture_free(fixture *f)
{
    flow_free_all(&f->h);
    ev_loop_destroy(f->h.loop);
    for (int i = 0; i < f->cap.n; i++) free(f->cap.frames[i]);
    free(f);
}

static slice S(const char *s) { return slice_make(s, strlen(s)); }
static const slice NONE = { "", 0 };

static void send_one(fixture *f, uint32_t id, const char *body)
{
    assert_int_equal(flow_send(&f->h, S(SENDER), id, S(body), NONE, NONE), 0);
}

/* buf holds n copies of c, as a string (buf has room for n + 1). */
static void filled(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
}

static void credit(fixture *f, uint32_t id, size_t n)
{
    flow_credit(&f->h, S(SENDER), id, n);
}

static void without_credits_every_message_goes_straight_out(void **state)
{
    (void)state;
    fixture *f = fixture_new(NULL);
    assert_int_equal(flow_window(&f->h), 0);
    char big[5000];
    filled(big, 'x', sizeof big - 1);
    for (int i = 0; i < 20; i++) send_one(f, 1, big);
    assert_int_equal(f->cap.n, 20);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 1), 0);
    fixture_free(f);
}

static void the_window_comes_from_download_credits(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    assert_int_equal(flow_window(&f->h), 1000);
    fixture_free(f);
    f = fixture_new(NULL);                       /* no request told it yet */
    credit(f, 12, 100);
    assert_int_equal(flow_window(&f->h), 102400);
    fixture_free(f);
}

static void what_does_not_fit_waits_and_leaves_in_order_as_credits_come(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char a[601], b[701];
    filled(a, 'a', 600);
    filled(b, 'b', 700);
    send_one(f, 1, a);                          /* fits: out at once */
    assert_int_equal(f->cap.n, 1);
    /* 600 + 700 > 1000: b is cut into pieces of a quarter window (250, 250,
     * 200); the first still fits, the rest waits, and the close behind it. */
    send_one(f, 1, b);
    send_one(f, 1, "");
    assert_int_equal(f->cap.n, 2);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 1), 450 + 1);
    credit(f, 1, 600);                          /* all of a written: the rest fits */
    assert_int_equal(f->cap.n, 5);
    size_t n, total = 0;
    char ids[32];
    for (int i = 1; i <= 3; i++) {
        const char *p = body_of(&f->cap, i, &n, ids, sizeof ids);
        assert_string_equal(ids, "1");
        assert_true(n <= 250);
        for (size_t k = 0; k < n; k++) assert_int_equal(p[k], 'b');
        total += n;
    }
    assert_int_equal(total, 700);
    body_of(&f->cap, 4, &n, ids, sizeof ids);
    assert_int_equal(n, 0);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 1), 0);
    fixture_free(f);
}

static void bytes_in_flight_never_pass_the_window(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char chunk[301];
    filled(chunk, 'c', 300);
    for (int i = 0; i < 10; i++) send_one(f, 3, chunk);
    /* Mongrel2's part: every captured message is in flight until it is
     * credited, oldest first, one at a time. */
    size_t in_flight = 0, total = 0;
    int counted = 0, credited = 0;
    for (;;) {
        char ids[32];
        size_t n;
        while (counted < f->cap.n) {
            body_of(&f->cap, counted++, &n, ids, sizeof ids);
            in_flight += n;
            total += n;
            assert_true(in_flight <= 1000);
        }
        if (credited == counted) break;
        body_of(&f->cap, credited++, &n, ids, sizeof ids);
        in_flight -= n;
        credit(f, 3, n);
    }
    assert_int_equal(total, 3000);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 3), 0);
    fixture_free(f);
}

static int heard[2];
static void note(void *ud, int open)
{
    (void)ud;
    heard[open]++;
}

static void a_waiter_hears_once_when_the_backlog_empties_or_the_client_left(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char big[2001];
    filled(big, 'z', 2000);
    flow_waiter w = { .fn = note };
    heard[0] = heard[1] = 0;
    assert_int_equal(flow_watch(&f->h, S(SENDER), 4, &w), 0);   /* nothing waits: no watch */
    send_one(f, 4, big);                         /* 1000 out, 1000 wait */
    assert_int_equal(flow_watch(&f->h, S(SENDER), 4, &w), 1);
    credit(f, 4, 500);
    assert_int_equal(heard[1], 0);
    credit(f, 4, 500);
    assert_int_equal(heard[1], 1);
    credit(f, 4, 1000);
    assert_int_equal(heard[1], 1);
    send_one(f, 4, big);
    assert_int_equal(flow_watch(&f->h, S(SENDER), 4, &w), 1);
    flow_gone(&f->h, S(SENDER), 4);
    assert_int_equal(heard[0], 1);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 4), 0);
    send_one(f, 4, "after");                      /* a fresh start: goes out */
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 4), 0);
    fixture_free(f);
}

static void a_restarted_mongrel2s_connections_are_forgotten_with_their_waiters_told(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char big[2001];
    filled(big, 'r', 2000);
    flow_waiter w = { .fn = note };
    heard[0] = heard[1] = 0;
    send_one(f, 11, big);                        /* 1000 out, 1000 wait */
    send_one(f, 12, big);
    assert_int_equal(flow_watch(&f->h, S(SENDER), 11, &w), 1);
    flow_forget_sender(&f->h, S("another-sender"));
    assert_true(flow_backlog(&f->h, S(SENDER), 11) > 0);
    flow_forget_sender(&f->h, S(SENDER));
    assert_int_equal(heard[0], 1);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 11), 0);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 12), 0);
    int before = f->cap.n;
    ev_run(f->h.loop, EVRUN_NOWAIT);             /* no stall timer left to cancel anyone */
    credit(f, 12, 1000);                         /* a late credit of the old life moves nothing */
    assert_int_equal(f->cap.n, before);
    send_one(f, 11, "fresh");                    /* the new life's id 11 starts with a full window */
    assert_int_equal(f->cap.n, before + 1);
    fixture_free(f);
}

/* Mongrel2 handing request `id` of the connection to this host (method GET or WEBSOCKET). */
static void request_arrives(fixture *f, uint32_t id, const char *method)
{
    char head[160], frame[320];
    snprintf(head, sizeof head, "{\"PATH\":\"/\",\"METHOD\":\"%s\",\"FLAGS\":\"0x81\"}", method);
    int n = snprintf(frame, sizeof frame, SENDER " %u / %zu:%s,0:,", id, strlen(head), head);
    m2_request m;
    memset(&m, 0, sizeof m);
    const char *err;
    assert_int_equal(m2_parse(frame, (size_t)n, &m, &err), 0);
    flow_request_seen(&f->h, &m);
    m2_headers_free(&m.headers);
}

/* Reply bytes captured so far (pieces of a waiting reply leave separately). */
static size_t bytes_sent(fixture *f)
{
    size_t total = 0, n;
    char ids[32];
    for (int i = 0; i < f->cap.n; i++) {
        body_of(&f->cap, i, &n, ids, sizeof ids);
        total += n;
    }
    return total;
}

static void a_new_request_settles_what_its_connection_had_in_flight(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char reply[801];
    filled(reply, 'k', 800);
    send_one(f, 13, reply);                       /* its credits went to another host */
    send_one(f, 13, reply);                       /* does not fit: waits */
    assert_int_equal(bytes_sent(f), 800);
    request_arrives(f, 13, "GET");                /* a backlog: nothing is settled */
    assert_int_equal(bytes_sent(f), 800);
    credit(f, 13, 800);
    assert_int_equal(bytes_sent(f), 1600);
    request_arrives(f, 13, "WEBSOCKET");          /* a frame says nothing of what was read */
    send_one(f, 13, reply);
    assert_int_equal(bytes_sent(f), 1600);
    credit(f, 13, 800);
    assert_int_equal(bytes_sent(f), 2400);
    request_arrives(f, 13, "GET");                /* the client read the reply before asking again */
    send_one(f, 13, reply);
    assert_int_equal(bytes_sent(f), 3200);
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 13), 0);
    fixture_free(f);
}

static void a_broadcast_skips_connections_without_room(void **state)
{
    (void)state;
    fixture *f = fixture_new("1000");
    char big[951];
    filled(big, 'q', 950);
    send_one(f, 5, big);                         /* 5 has 50 bytes of room */
    uint32_t ids[] = { 5, 6, 7 };
    flow_send_ids(&f->h, S(SENDER), ids, 3, S("0123456789abcdefghij0123456789abcdefghij"
                                                 "0123456789abcdefghij0123456789abcdefghij"
                                                 "0123456789abcdefghij"));
    assert_int_equal(f->cap.n, 2);
    size_t n;
    char got[32];
    body_of(&f->cap, 1, &n, got, sizeof got);
    assert_string_equal(got, "6 7");
    assert_int_equal(n, 100);
    assert_true(flow_backlog(&f->h, S(SENDER), 5) > 0);
    credit(f, 5, 950);
    assert_int_equal(f->cap.n, 3);
    body_of(&f->cap, 2, &n, got, sizeof got);
    assert_string_equal(got, "5");
    fixture_free(f);
}

static void a_client_that_reads_nothing_is_cancelled_after_the_send_timeout(void **state)
{
    (void)state;
    setenv("LUBECK_SEND_TIMEOUT", "0.05", 1);
    fixture *f = fixture_new("1000");
    unsetenv("LUBECK_SEND_TIMEOUT");
    char big[1501];
    filled(big, 'w', 1500);
    flow_waiter w = { .fn = note };
    heard[0] = heard[1] = 0;
    send_one(f, 9, big);
    assert_int_equal(flow_watch(&f->h, S(SENDER), 9, &w), 1);
    int before = f->cap.n;
    ev_run(f->h.loop, 0);                         /* only the stall timer is armed */
    assert_int_equal(heard[0], 1);
    assert_int_equal(f->cap.n, before + 1);
    assert_string_equal(f->cap.frames[before], SENDER " 3:X 9, 23:3:ctl,13:6:cancel,1:1,}]");
    assert_int_equal(flow_backlog(&f->h, S(SENDER), 9), 0);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(without_credits_every_message_goes_straight_out),
        cmocka_unit_test(the_window_comes_from_download_credits),
        cmocka_unit_test(what_does_not_fit_waits_and_leaves_in_order_as_credits_come),
        cmocka_unit_test(bytes_in_flight_never_pass_the_window),
        cmocka_unit_test(a_waiter_hears_once_when_the_backlog_empties_or_the_client_left),
        cmocka_unit_test(a_restarted_mongrel2s_connections_are_forgotten_with_their_waiters_told),
        cmocka_unit_test(a_new_request_settles_what_its_connection_had_in_flight),
        cmocka_unit_test(a_broadcast_skips_connections_without_room),
        cmocka_unit_test(a_client_that_reads_nothing_is_cancelled_after_the_send_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
