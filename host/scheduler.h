/* Coroutines. Every request's handler runs in its own coroutine (a Lua thread
 * taken from a per-generation pool); lubeck.spawn adds more to the same request.
 * A host call that must wait (sleep, socket, channel, thread join) records what
 * it waits for in the task and yields; the loop resumes the task when that
 * arrives. Cancelling a task undoes its wait and resumes it with nil, reason. */
#ifndef LUBECK_SCHEDULER_H
#define LUBECK_SCHEDULER_H

#include "host.h"

typedef enum lbk_wait {
    WAIT_NONE,        /* running, or finished */
    WAIT_TIMER,       /* lubeck.sleep */
    WAIT_READY,       /* woken: resumed on the next loop iteration with ready_nargs values */
    WAIT_OTHER,       /* a subsystem's wait, undone through undo_fn */
} lbk_wait;

typedef void (*lbk_undo_fn)(lbk_task *t);

struct lbk_task {
    lua_State *co;
    int ref;                         /* keeps co alive in the registry */
    lbk_gen *gen;
    lbk_req *req;                    /* the request it serves (NULL: none) */
    lbk_task *req_prev, *req_next;   /* the request's tasks */
    lbk_wait wait;
    ev_timer timer;                  /* sleep, or the timeout of a WAIT_OTHER */
    lbk_undo_fn undo_fn;             /* unlinks t from what it waits on */
    void *wait_on;                   /* that object (socket, channel, thread) */
    int timeout_false;               /* a timeout returns false, "timeout" (not nil) */
    int ready_nargs;
    unsigned cancel_round;           /* host.c: woken once per cancellation */
    lbk_task *next;                  /* free list / ready queue */
    lbk_task *wait_prev, *wait_next; /* a waiter list of the object waited on */
    struct lbk_thread *thread;       /* set for tasks started by lubeck.spawn */
};

lbk_task *sched_task_acquire(lbk_gen *g);
/* Runs t with the function and nargs arguments already pushed on t->co. */
void sched_start(lbk_task *t, int nargs);
/* The task running on L (its coroutine, or one the handler made inside it);
 * raises a Lua error naming `what` when there is none (the app's top level). */
lbk_task *sched_current(lubeck *h, lua_State *L, const char *what);
/* What a wait inside a handler's own coroutine yields (lubeck.coroutine). */
void *sched_wait_marker(void);

/* Waiting. Each is called as `return sched_...(L, t, ...)` from a C function. */
int sched_sleep(lua_State *L, lbk_task *t, double seconds);
/* Waits for a wake/complete; timeout < 0 means none. undo is called when the
 * wait ends by timeout or cancellation, to unlink t from wait_on. */
int sched_wait(lua_State *L, lbk_task *t, void *wait_on, double timeout, lbk_undo_fn undo,
               int timeout_false);

/* Ends t's wait with nvalues already pushed on t->co; it runs on the next loop
 * iteration (safe to call from inside another task). */
void sched_wake(lbk_task *t, int nvalues);
/* Same, but runs it now: for loop callbacks (I/O readiness). */
void sched_complete(lbk_task *t, int nvalues);
/* Undoes t's wait and resumes it with nil, reason. No-op when t is not waiting. */
void sched_cancel(lbk_task *t, const char *reason);

void sched_init(lubeck *h);
void sched_gen_close(lbk_gen *g);   /* frees the pooled tasks of a generation */

#endif
