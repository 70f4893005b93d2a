/* The keep-alive pool of cosockets (host/services/sock_pool.c) and the
 * keep-alive decision of a connection (conn_keepalive, cosocket.c), alone on a
 * libev loop with real socket pairs: the far end of each pair plays the
 * server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cosocket.h"
#include "sock_pool.h"

/* A connected pair: c[0] is ours (non-blocking, as a cosocket's), c[1] the server. */
static void pair(int c[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
    fcntl(c[0], F_SETFL, fcntl(c[0], F_GETFL) | O_NONBLOCK);
}

/* Whether the server's end sees our end closed, without blocking: the end of
 * the stream, or a reset when we closed with bytes unread. */
static int closed_by_us(int server)
{
    char ch;
    fcntl(server, F_SETFL, fcntl(server, F_GETFL) | O_NONBLOCK);
    ssize_t n = recv(server, &ch, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int tls_freed;
static void count_tls_free(void *tls) { (void)tls; tls_freed++; }

static void each_key_hands_out_only_its_own_connections(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_sock_pool *p = sock_pool_new(loop);
    int a[2], b[2];
    pair(a);
    pair(b);
    assert_int_equal(sock_pool_put(p, "db:5432/app", a[0], 0, NULL, NULL, 60, 10), 0);
    assert_int_equal(sock_pool_put(p, "db:5432/other", b[0], 3, NULL, NULL, 60, 10), 0);
    assert_int_equal(sock_pool_idle(p, "db:5432/app"), 1);
    assert_int_equal(sock_pool_idle(p, "db:5432"), 0);   /* a key is matched whole */

    int reused = -1;
    void *tls = (void *)1;
    assert_int_equal(sock_pool_take(p, "db:5432", &reused, &tls), -1);
    assert_int_equal(sock_pool_take(p, "db:5432/other", &reused, &tls), b[0]);
    assert_int_equal(reused, 4);                         /* taken once more */
    assert_null(tls);
    assert_int_equal(sock_pool_take(p, "db:5432/other", &reused, &tls), -1);   /* taken: gone */
    assert_int_equal(sock_pool_take(p, "db:5432/app", &reused, &tls), a[0]);
    assert_int_equal(reused, 1);
    assert_false(closed_by_us(a[1]));                  /* handed out open */
    for (int i = 0; i < 2; i++) close(a[i]), close(b[i]);
    sock_pool_free(p);
    assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0);   /* no watcher left */
    ev_loop_destroy(loop);
}

static void a_full_pool_drops_its_oldest_connection(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_sock_pool *p = sock_pool_new(loop);
    int c[3][2], other[2];
    tls_freed = 0;
    for (int i = 0; i < 3; i++) pair(c[i]);
    pair(other);
    assert_int_equal(sock_pool_put(p, "other", other[0], 0, NULL, NULL, 60, 1), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sock_pool_put(p, "k", c[i][0], 0, &c[i], count_tls_free, 60, 2), 0);
    assert_int_equal(sock_pool_idle(p, "k"), 2);
    assert_int_equal(sock_pool_idle(p, "other"), 1);   /* another key's limit is its own */
    assert_true(closed_by_us(c[0][1]));                /* the oldest went, its TLS state too */
    assert_int_equal(tls_freed, 1);

    int reused;
    void *tls;
    assert_int_equal(sock_pool_take(p, "k", &reused, &tls), c[2][0]);   /* newest first */
    assert_ptr_equal(tls, &c[2]);
    close(c[2][0]);
    sock_pool_free(p);                                  /* closes what is still idle */
    assert_true(closed_by_us(c[1][1]));
    assert_true(closed_by_us(other[1]));
    assert_int_equal(tls_freed, 2);
    for (int i = 0; i < 3; i++) close(c[i][1]);
    close(other[1]);
    ev_loop_destroy(loop);
}

static void a_closed_or_talking_pooled_connection_is_never_handed_out(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_sock_pool *p = sock_pool_new(loop);
    int closed[2], talking[2], fine[2];
    pair(closed);
    pair(talking);
    pair(fine);
    assert_int_equal(sock_pool_put(p, "k", fine[0], 0, NULL, NULL, 60, 10), 0);
    assert_int_equal(sock_pool_put(p, "k", talking[0], 0, NULL, NULL, 60, 10), 0);
    assert_int_equal(sock_pool_put(p, "k", closed[0], 0, NULL, NULL, 60, 10), 0);
    close(closed[1]);                                   /* the server went away */
    assert_int_equal(write(talking[1], "x", 1), 1);     /* the server said something unasked */

    /* Before the loop has seen either: take looks again. */
    int reused;
    void *tls;
    assert_int_equal(sock_pool_take(p, "k", &reused, &tls), fine[0]);
    assert_int_equal(sock_pool_idle(p, "k"), 0);        /* both bad ones were dropped */
    assert_true(closed_by_us(talking[1]));
    close(fine[0]);

    /* Idle, the loop drops one whose peer closes. */
    pair(closed);
    assert_int_equal(sock_pool_put(p, "k", closed[0], 0, NULL, NULL, 60, 10), 0);
    close(closed[1]);
    ev_run(loop, EVRUN_NOWAIT);
    assert_int_equal(sock_pool_idle(p, "k"), 0);
    assert_int_equal(sock_pool_take(p, "k", &reused, &tls), -1);

    close(talking[1]);
    close(fine[1]);
    sock_pool_free(p);
    ev_loop_destroy(loop);
}

static void an_idle_connection_goes_when_its_time_is_up(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_sock_pool *p = sock_pool_new(loop);
    int c[2];
    pair(c);
    assert_int_equal(sock_pool_put(p, "k", c[0], 0, NULL, NULL, 0.02, 10), 0);
    for (int i = 0; i < 100 && sock_pool_idle(p, "k"); i++) ev_run(loop, EVRUN_ONCE);
    assert_int_equal(sock_pool_idle(p, "k"), 0);
    assert_true(closed_by_us(c[1]));
    assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0);
    close(c[1]);
    sock_pool_free(p);
    ev_loop_destroy(loop);
}

/* ---- conn_keepalive: what may go back to the pool ------------------------------ */

static void unread_bytes_make_a_connection_dubious(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_cosockets *cs = cosockets_new(loop);
    lbk_conn c;
    int kernel[2], buffered[2], clean[2], gone[2];

    /* Bytes the server sent that nobody read, still in the kernel. */
    pair(kernel);
    conn_init(&c, cs);
    conn_target(&c, "127.0.0.1", 6379, NULL);
    conn_adopt_fd(&c, kernel[0]);
    assert_int_equal(write(kernel[1], "+OK\r\n", 5), 5);
    assert_int_equal(cosockets_open(cs), 1);
    assert_int_equal(conn_keepalive(&c, 60, 10), SOCK_DIRTY);
    assert_int_equal(c.fd, -1);                         /* closed, not pooled */
    assert_true(closed_by_us(kernel[1]));
    assert_int_equal(sock_pool_idle(cosockets_pool(cs), "127.0.0.1:6379"), 0);
    conn_free(&c);

    /* Read into the buffer but not taken by a receive. */
    pair(buffered);
    conn_init(&c, cs);
    conn_target(&c, "127.0.0.1", 6379, NULL);
    conn_adopt_fd(&c, buffered[0]);
    assert_int_equal(write(buffered[1], "+OK\r\n+OK\r\n", 10), 10);
    c.recv.kind = CONN_PATTERN_LINE;
    slice line;
    int events = 0;
    const char *err = NULL;
    assert_int_equal(conn_recv(&c, &line, &events, &err), CONN_RECV_DATA);
    assert_int_equal(line.n, 3);                        /* "+OK", the second still buffered */
    assert_int_equal(conn_keepalive(&c, 60, 10), SOCK_DIRTY);
    assert_int_equal(sock_pool_idle(cosockets_pool(cs), "127.0.0.1:6379"), 0);
    conn_free(&c);

    /* The server closed: not reusable either. */
    pair(gone);
    conn_init(&c, cs);
    conn_target(&c, "127.0.0.1", 6379, NULL);
    conn_adopt_fd(&c, gone[0]);
    close(gone[1]);
    assert_int_equal(conn_keepalive(&c, 60, 10), SOCK_PEER_CLOSED);
    conn_free(&c);

    /* Everything read: pooled under its key, and handed to the next connect. */
    pair(clean);
    conn_init(&c, cs);
    conn_target(&c, "127.0.0.1", 6379, "redis/db0");
    conn_adopt_fd(&c, clean[0]);
    assert_int_equal(write(clean[1], "+OK\r\n", 5), 5);
    assert_int_equal(conn_recv(&c, &line, &events, &err), CONN_RECV_DATA);
    assert_int_equal(conn_keepalive(&c, 60, 10), SOCK_CLEAN);
    assert_int_equal(c.fd, -1);
    assert_int_equal(cosockets_open(cs), 0);
    assert_false(closed_by_us(clean[1]));               /* pooled, still open */
    assert_int_equal(sock_pool_idle(cosockets_pool(cs), "redis/db0"), 1);
    conn_free(&c);

    conn_init(&c, cs);
    conn_target(&c, "127.0.0.1", 6379, "redis/db0");
    assert_int_equal(conn_connect(&c, &err), CONN_DONE);
    assert_int_equal(c.fd, clean[0]);
    assert_int_equal(c.reused, 1);
    assert_int_equal(cosockets_open(cs), 1);
    conn_free(&c);
    assert_int_equal(cosockets_open(cs), 0);

    close(kernel[1]);
    close(buffered[1]);
    close(clean[1]);
    cosockets_free(cs);
    ev_loop_destroy(loop);
}

/* ---- limits on connections in use (backlog) ------------------------------------ */

static lbk_queued *went;
static void note_go(lbk_queued *q, lbk_pool_group *g) { (void)g; went = q; }

static void a_pool_limits_connections_in_use_and_queues_the_rest(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    lbk_sock_pool *p = sock_pool_new(loop);
    lbk_pool_group *g = sock_pool_group(p, "k");
    assert_non_null(g);
    assert_ptr_equal(sock_pool_group(p, "k"), g);
    assert_ptr_not_equal(sock_pool_group(p, "other"), g);
    lbk_queued q[5];
    memset(q, 0, sizeof q);
    for (int i = 0; i < 5; i++) q[i].go = note_go;

    /* size 2, backlog 2 */
    assert_int_equal(sock_group_enter(g, 2, 2, &q[0]), 1);
    assert_int_equal(sock_group_enter(g, 2, 2, &q[1]), 1);
    assert_int_equal(sock_group_enter(g, 2, 2, &q[2]), 0);    /* queued */
    assert_int_equal(sock_group_enter(g, 2, 2, &q[3]), 0);
    assert_int_equal(sock_group_enter(g, 2, 2, &q[4]), -1);   /* the queue is full */
    assert_int_equal(sock_group_enter(sock_pool_group(p, "other"), 2, 2, &q[4]), 1);

    sock_group_dequeue(&q[2]);                  /* it gave up (a timeout) */
    went = NULL;
    sock_group_leave(g);                        /* the slot goes to the next still waiting */
    assert_ptr_equal(went, &q[3]);
    assert_null(q[3].group);
    assert_int_equal(sock_group_enter(g, 2, 2, &q[2]), 0);   /* still full: two in use */
    went = NULL;
    sock_group_leave(g);
    assert_ptr_equal(went, &q[2]);
    went = NULL;
    sock_group_leave(g);
    assert_null(went);                          /* nobody waiting: a free slot */
    assert_int_equal(sock_group_enter(g, 2, 2, &q[0]), 1);
    sock_pool_free(p);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_key_hands_out_only_its_own_connections),
        cmocka_unit_test(a_full_pool_drops_its_oldest_connection),
        cmocka_unit_test(a_closed_or_talking_pooled_connection_is_never_handed_out),
        cmocka_unit_test(an_idle_connection_goes_when_its_time_is_up),
        cmocka_unit_test(unread_bytes_make_a_connection_dubious),
        cmocka_unit_test(a_pool_limits_connections_in_use_and_queues_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
