/* Coroutines. Every request's handler runs in its own coroutine (a Lua thread
 * taken from a per-generation pool). A host call that must wait (sleep, socket,
 * channel) records what it waits for in the task and yields; the loop resumes the
 * task when that arrives. Cancelling a task undoes its wait and resumes it with
 * nil, reason. */
#ifndef LUBECK_SCHED_H
#define LUBECK_SCHED_H

#include "host.h"

typedef enum lbk_wait {
    WAIT_NONE,        /* running, or finished */
    WAIT_TIMER,       /* lubeck.sleep */
    WAIT_READY,       /* yielded with nothing to wait for: resumed next iteration */
    WAIT_OTHER,       /* a subsystem's wait; undone through cancel_fn */
} lbk_wait;

struct lbk_task {
    lua_State *co;
    int ref;                         /* keeps co alive in the registry */
    lbk_gen *gen;
    lbk_req *req;                    /* the request it serves */
    lbk_wait wait;
    ev_timer timer;
    void (*cancel_fn)(lbk_task *t);  /* undoes a WAIT_OTHER wait */
    void *wait_data;
    lbk_task *next;                  /* free list / ready queue */
};

lbk_task *sched_task_acquire(lbk_gen *g);
/* Runs t with the function and nargs arguments already pushed on t->co. */
void sched_start(lbk_task *t, int nargs);
/* Resumes a waiting task with nresults values already pushed on t->co. */
void sched_resume(lbk_task *t, int nresults);
/* Undoes t's wait and resumes it with nil, reason. No-op when t is not waiting. */
void sched_cancel(lbk_task *t, const char *reason);
/* The task running on L, or NULL (with a Lua error raised when must is set). */
lbk_task *sched_current(lubeck *h, lua_State *L, const char *what);
/* Suspends the running task for seconds. Called as `return sched_sleep(...)`. */
int sched_sleep(lua_State *L, lbk_task *t, double seconds);
void sched_init(lubeck *h);
void sched_gen_close(lbk_gen *g);   /* frees the pooled tasks of a generation */

#endif
