/* Name lookups for cosockets. getaddrinfo blocks, so each lookup is a job of
 * the process's offload pool (offload.h): it runs on a helper thread and its
 * answer comes back on the loop, to the caller's callback. A caller that
 * stops waiting (a timeout, its task gone) cancels the lookup: the job still
 * finishes, and its answer is then freed unread. The job holds everything it
 * needs, so it may finish after the connection that started it is gone. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload.h"

struct lbk_resolve {
    lbk_offload off;             /* first: the pool hands it back as the job */
    int cancelled;               /* the caller stopped waiting: drop the answer */
    cosocket_resolved_fn done_fn;
    void *arg;
    char host[256], port[16];
    struct addrinfo *res;        /* written on the helper thread */
    int err;
};

static void resolve_work(lbk_offload *off)
{
    lbk_resolve *q = (lbk_resolve *)off;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    q->err = getaddrinfo(q->host, q->port, &hints, &q->res);
}

/* On the loop, once the lookup is done: hands the answer on, or frees it. */
static void resolve_finish(lbk_offload *off)
{
    lbk_resolve *q = (lbk_resolve *)off;
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

lbk_resolve *cosocket_resolve(struct ev_loop *loop, const char *host, int port,
                              cosocket_resolved_fn done, void *arg)
{
    lbk_resolve *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->done_fn = done;
    q->arg = arg;
    snprintf(q->host, sizeof q->host, "%s", host);
    snprintf(q->port, sizeof q->port, "%d", port);
    q->off.work = resolve_work;
    q->off.finish = resolve_finish;
    if (offload_submit(&q->off, loop) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

void cosocket_resolve_cancel(lbk_resolve *q)
{
    q->cancelled = 1;
}
