/* The helper threads of offload.h. Shared by every host of the process, hence
 * the lock; threads start on demand, detached, and wait for more work. */
#include "offload.h"

#include <pthread.h>
#include <stddef.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static lbk_offload *head, *tail;
static int threads, idle;

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        idle++;
        while (!head) pthread_cond_wait(&wake, &lock);
        idle--;
        lbk_offload *job = head;
        head = job->next;
        if (!head) tail = NULL;
        pthread_mutex_unlock(&lock);
        job->work(job);
        /* The job belongs to the loop again from here on: no touching it. */
        ev_async_send(job->loop, &job->done);
    }
    return NULL;
}

static void done_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    lbk_offload *job = (lbk_offload *)w;   /* done is the first member */
    ev_async_stop(loop, &job->done);
    job->finish(job);
}

int offload_submit(lbk_offload *job, struct ev_loop *loop)
{
    job->loop = loop;
    ev_async_init(&job->done, done_cb);
    ev_async_start(loop, &job->done);
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (idle == 0 && threads < OFFLOAD_THREADS) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, worker, NULL) == 0) threads++;
        else if (threads == 0) rc = -1;
        pthread_attr_destroy(&attr);
    }
    if (rc == 0) {
        job->next = NULL;
        if (tail) tail->next = job; else head = job;
        tail = job;
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&lock);
    if (rc != 0) ev_async_stop(loop, &job->done);
    return rc;
}
