/* Coroutines. Every request's handler runs in its own coroutine (a Lua thread
 * taken from a per-generation pool); lubeck.spawn adds more to the same request.
 * A host call that must wait (sleep, socket, channel, thread join) records what
 * it waits for in the task and yields; the loop resumes the task when that
 * arrives. Cancelling a task undoes its wait and resumes it with nil, reason.
 *
 * The scheduler knows tasks and nothing above them: what a task serves (a
 * request, a spawned thread) is the server's, told through the hooks it fills
 * in (task ended, a wait begins, a retired generation is idle). */
#ifndef LUBECK_SCHEDULER_H
#define LUBECK_SCHEDULER_H

#include <ev.h>
#include <lua.h>

#include "gen.h"

typedef struct lbk_sched lbk_sched;

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
    /* The server's: the scheduler never reads them. */
    struct lbk_req *req;             /* the request it serves (NULL: none) */
    lbk_task *req_prev, *req_next;   /* the request's tasks */
    unsigned cancel_round;           /* park.c: woken once per cancellation */
    struct lbk_thread *thread;       /* set for tasks started by lubeck.spawn */
    /* The wait: written only by scheduler.c (sched_wait, sched_wake, sched_unwait...). */
    lbk_wait wait;
    ev_timer timer;                  /* sleep, or the timeout of a WAIT_OTHER */
    lbk_undo_fn undo_fn;             /* unlinks t from what it waits on */
    void *wait_on;                   /* that object (socket, channel, thread); read it, never write it */
    int timeout_false;               /* a timeout returns false, "timeout" (not nil) */
    int ready_nargs;
    lbk_task *next;                  /* free list / ready queue */
    /* Links of the waiter list of the object waited on: that object's to use. */
    lbk_task *wait_prev, *wait_next;
};

/* What the scheduler calls back; ud is the hooks' owner (the server). */
typedef struct lbk_sched_hooks {
    /* t's coroutine returned (failed: raised; its error is on top of t->co). */
    void (*task_ended)(void *ud, lbk_task *t, int failed);
    /* t is about to wait on L: 0 to let it, or the count of values pushed on
     * L that the wait returns at once instead (nil, reason: a refusal). */
    int (*wait_begins)(void *ud, lbk_task *t, lua_State *L);
    /* A retired generation's last task ended. */
    void (*gen_idle)(void *ud, lbk_gen *g);
} lbk_sched_hooks;

struct lbk_sched {
    struct ev_loop *loop;
    lbk_task *current;               /* the coroutine running right now */
    int ntasks;                      /* coroutines alive, all generations */
    lbk_task *ready_head, *ready_tail;   /* yielded with nothing to wait for */
    ev_idle ready_idle;
    lbk_sched_hooks hooks;
    void *ud;
};

void sched_init(lbk_sched *s, struct ev_loop *loop, const lbk_sched_hooks *hooks, void *ud);
/* Stops the scheduler's watcher and forgets the ready queue (the loop is ending). */
void sched_stop(lbk_sched *s);

lbk_task *sched_task_acquire(lbk_gen *g);
/* Frees t without running it again (lubeck_free: its coroutine goes with its
 * state); a retired generation left with no task is reported idle. */
void sched_task_drop(lbk_task *t);
/* Runs t with the function and nargs arguments already pushed on t->co. */
void sched_start(lbk_task *t, int nargs);
/* The task running on L (its coroutine, or one the handler made inside it);
 * raises a Lua error naming `what` when there is none (the app's top level). */
lbk_task *sched_running(lbk_sched *s, lua_State *L, const char *what);
/* What a wait inside a handler's own coroutine yields (lubeck.coroutine). */
void *sched_wait_marker(void);

/* Waiting. Each is called as `return sched_...(L, t, ...)` from a C function. */
int sched_sleep(lua_State *L, lbk_task *t, double seconds);
/* Waits for a wake/complete; timeout < 0 means none. undo is called when the
 * wait ends by timeout or cancellation, to unlink t from wait_on. */
int sched_wait(lua_State *L, lbk_task *t, void *wait_on, double timeout, lbk_undo_fn undo,
               int timeout_false);
/* Whether t is waiting on obj right now (sched_wait was not refused). */
int sched_waits_on(const lbk_task *t, const void *obj);

/* Ends t's wait with nvalues already pushed on t->co; it runs on the next loop
 * iteration (safe to call from inside another task). */
void sched_wake(lbk_task *t, int nvalues);
/* Same, but runs it now: for loop callbacks (I/O readiness). */
void sched_complete(lbk_task *t, int nvalues);
/* sched_wake with true (ok), or with nil, err: the usual end of a wait. */
void sched_wake_result(lbk_task *t, int ok, const char *err);
/* Undoes t's wait and resumes it with nil, reason. No-op when t is not waiting. */
void sched_cancel(lbk_task *t, const char *reason);
/* Undoes t's wait (its timer stopped, undo_fn called) and leaves it suspended:
 * for a wait given up before it began, or a task that will never run again. */
void sched_unwait(lbk_task *t);

void sched_gen_close(lbk_gen *g);   /* frees the pooled tasks of a generation */

#endif
