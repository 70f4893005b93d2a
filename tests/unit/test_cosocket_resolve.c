/* Name lookups for cosockets (host/services/cosocket_resolve.c) on the
 * offload pool: the answer comes back on the loop's thread; a cancelled
 * lookup's answer is never handed on, and is freed (the ASan build's leak
 * check sees it otherwise). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>

#include "cosocket.h"

typedef struct answer {
    int calls;
    int port;                    /* of the first address */
    int on_loop_thread;
    const char *err;
} answer;

static pthread_t loop_thread;

static void done(void *arg, struct addrinfo *addrs, const char *err)
{
    answer *a = arg;
    a->calls++;
    a->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
    a->err = err;
    if (addrs) {
        if (addrs->ai_family == AF_INET)
            a->port = ntohs(((struct sockaddr_in *)addrs->ai_addr)->sin_port);
        else if (addrs->ai_family == AF_INET6)
            a->port = ntohs(((struct sockaddr_in6 *)addrs->ai_addr)->sin6_port);
        freeaddrinfo(addrs);   /* the callee owns them */
    }
}

static void a_name_is_resolved_off_the_loop_and_answered_on_it(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    answer a = { 0 };
    lbk_resolve *q = cosocket_resolve(loop, "localhost", 6379, done, &a);
    assert_non_null(q);
    assert_int_equal(a.calls, 0);                 /* never answered from inside the call */
    ev_run(loop, 0);                              /* returns once the job's watcher is gone */
    assert_int_equal(a.calls, 1);
    assert_true(a.on_loop_thread);
    assert_null(a.err);
    assert_int_equal(a.port, 6379);
    ev_loop_destroy(loop);
}

static void a_cancelled_lookup_is_never_answered(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    answer gone[3] = { { 0 } }, kept = { 0 };
    lbk_resolve *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = cosocket_resolve(loop, "localhost", 80, done, &gone[i]);
        assert_non_null(q[i]);
    }
    assert_non_null(cosocket_resolve(loop, "localhost", 443, done, &kept));
    for (int i = 0; i < 3; i++) cosocket_resolve_cancel(q[i]);   /* their tasks went away */
    ev_run(loop, 0);
    for (int i = 0; i < 3; i++) assert_int_equal(gone[i].calls, 0);
    assert_int_equal(kept.calls, 1);
    assert_int_equal(kept.port, 443);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_name_is_resolved_off_the_loop_and_answered_on_it),
        cmocka_unit_test(a_cancelled_lookup_is_never_answered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
