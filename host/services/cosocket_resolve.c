/* Name resolution for cosockets. getaddrinfo blocks, so each lookup runs on a
 * detached thread of its own and hands its answer back to the loop through
 * one ev_async; the caller gets it through its callback, on the loop. A caller
 * that stops waiting cancels its lookup: the answer is then dropped. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct lbk_resolve {
    int cancelled;               /* the caller stopped waiting: drop the answer */
    struct lbk_resolve *next;
    struct lbk_resolver *resolver;
    struct ev_loop *loop;
    cosocket_resolved_fn done_fn;
    void *arg;
    char host[256], port[16];
    struct addrinfo *res;
    int err;
};

typedef struct lbk_resolver {
    pthread_mutex_t lock;
    int pending;                 /* lookups still on their threads */
    lbk_resolve *done;
    ev_async async;
} lbk_resolver;

static void resolved_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop; (void)revents;
    lbk_resolver *rs = w->data;
    pthread_mutex_lock(&rs->lock);
    lbk_resolve *list = rs->done;
    rs->done = NULL;
    for (lbk_resolve *q = list; q; q = q->next) rs->pending--;
    pthread_mutex_unlock(&rs->lock);
    while (list) {
        lbk_resolve *q = list;
        list = q->next;
        if (!q->cancelled) {
            if (q->err || !q->res) {
                char msg[320];
                snprintf(msg, sizeof msg, "%s could not be resolved (%s)", q->host,
                         gai_strerror(q->err ? q->err : EAI_NONAME));
                q->done_fn(q->arg, NULL, msg);
            } else {
                struct addrinfo *res = q->res;   /* the caller owns the list now */
                q->res = NULL;
                q->done_fn(q->arg, res, NULL);
            }
        }
        if (q->res) freeaddrinfo(q->res);
        free(q);
    }
}

static void *resolve_thread(void *arg)
{
    lbk_resolve *q = arg;
    lbk_resolver *rs = q->resolver;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    q->err = getaddrinfo(q->host, q->port, &hints, &q->res);
    pthread_mutex_lock(&rs->lock);
    q->next = rs->done;
    rs->done = q;
    pthread_mutex_unlock(&rs->lock);
    ev_async_send(q->loop, &rs->async);
    return NULL;
}

static lbk_resolver *resolver(lubeck *h)
{
    if (h->resolver) return h->resolver;
    lbk_resolver *rs = calloc(1, sizeof *rs);
    if (!rs) return NULL;
    pthread_mutex_init(&rs->lock, NULL);
    ev_async_init(&rs->async, resolved_cb);
    rs->async.data = rs;
    ev_async_start(h->loop, &rs->async);
    h->resolver = rs;
    return rs;
}

lbk_resolve *cosocket_resolve(lubeck *h, const char *host, int port, cosocket_resolved_fn done,
                              void *arg)
{
    lbk_resolver *rs = resolver(h);
    lbk_resolve *q = rs ? calloc(1, sizeof *q) : NULL;
    if (!q) return NULL;
    q->resolver = rs;
    q->loop = h->loop;
    q->done_fn = done;
    q->arg = arg;
    snprintf(q->host, sizeof q->host, "%s", host);
    snprintf(q->port, sizeof q->port, "%d", port);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, resolve_thread, q);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(q);
        return NULL;
    }
    rs->pending++;
    return q;
}

void cosocket_resolve_cancel(lbk_resolve *q)
{
    q->cancelled = 1;
}

void cosocket_resolver_free(lubeck *h)
{
    lbk_resolver *rs = h->resolver;
    if (!rs) return;
    ev_async_stop(h->loop, &rs->async);
    /* A lookup still on its thread will touch the resolver: leave it be. */
    if (rs->pending == 0) {
        pthread_mutex_destroy(&rs->lock);
        free(rs);
    }
    h->resolver = NULL;
}
