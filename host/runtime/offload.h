/* Blocking work off the loop: a job's work runs on one of a few helper
 * threads, then its finish runs on the loop that submitted it. One pool for
 * the process: argon2id hashes (crypto.c), cosockets' name lookups
 * (cosocket_resolve.c). */
#ifndef LUBECK_OFFLOAD_H
#define LUBECK_OFFLOAD_H

#include <ev.h>

/* At most this many jobs run at once: argon2id takes 64 MiB per call, so the
 * bound is also one on memory. */
#define OFFLOAD_THREADS 4

typedef struct lbk_offload lbk_offload;
typedef void (*offload_fn)(lbk_offload *job);

/* Embed it as the first member of a job struct. */
struct lbk_offload {
    ev_async done;               /* the worker signals the loop through it */
    struct ev_loop *loop;
    offload_fn work;             /* on a helper thread: touch nothing but the job */
    offload_fn finish;           /* on the loop once work returned; may free the job */
    lbk_offload *next;           /* queue link */
};

/* Queues job (work and finish set) to run for loop. 0, or -1 when no helper
 * thread could be started: nothing was queued, the caller may run work itself. */
int offload_submit(lbk_offload *job, struct ev_loop *loop);

#endif
