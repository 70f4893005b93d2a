/* The helper-thread pool (host/runtime/offload.c): every job's work runs off
 * the loop, at most OFFLOAD_THREADS at once, and its finish runs on the loop's
 * thread after its work. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "offload.h"

#define JOBS 12

typedef struct job {
    lbk_offload off;             /* first */
    pthread_t worked_on;
    int worked, finished;
} job;

static atomic_int running, most;
static pthread_t loop_thread;
static int finished;

static void work(lbk_offload *o)
{
    job *j = (job *)o;
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&most);
    while (now > seen && !atomic_compare_exchange_weak(&most, &seen, now)) {}
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    j->worked_on = pthread_self();
    j->worked = 1;
    atomic_fetch_sub(&running, 1);
}

static void finish(lbk_offload *o)
{
    job *j = (job *)o;
    assert_true(j->worked);                          /* after its work */
    assert_true(pthread_equal(pthread_self(), loop_thread));
    assert_false(pthread_equal(j->worked_on, loop_thread));
    j->finished++;
    finished++;
}

static void every_job_works_off_the_loop_and_finishes_on_it_once(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    loop_thread = pthread_self();
    static job jobs[JOBS];
    for (int i = 0; i < JOBS; i++) {
        jobs[i].off.work = work;
        jobs[i].off.finish = finish;
        assert_int_equal(offload_submit(&jobs[i].off, loop), 0);
    }
    for (int i = 0; i < 1000 && finished < JOBS; i++) ev_run(loop, EVRUN_ONCE);
    assert_int_equal(finished, JOBS);
    for (int i = 0; i < JOBS; i++) assert_int_equal(jobs[i].finished, 1);
    assert_true(atomic_load(&most) >= 2);              /* they did run side by side */
    assert_true(atomic_load(&most) <= OFFLOAD_THREADS);
    assert_int_equal(ev_run(loop, EVRUN_NOWAIT), 0);   /* no watcher left on the loop */
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_job_works_off_the_loop_and_finishes_on_it_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
