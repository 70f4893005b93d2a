/* A thread of lubeck.spawn, as plain C: the task running it, the one task
 * joined on it (t:wait), and how it ended. What the thread returned lives in
 * its Lua state, so the Lua face (host/lua/lua_thread.c) keeps it and hands
 * it over, through the hooks it gives thread_new. */
#ifndef LUBECK_THREAD_H
#define LUBECK_THREAD_H

#include "scheduler.h"

typedef struct lbk_thread lbk_thread;

/* What the thread's owner (its Lua face) does at the thread's end; ud is the
 * one given to thread_new. Called in this order, once. */
typedef struct lbk_thread_hooks {
    /* t, the thread's task, returned (failed: raised, its error on top of
     * t->co): keep what it left for whoever joins. */
    void (*keep_results)(void *ud, lbk_task *t, int failed);
    /* Pushes the outcome on joiner->co; returns how many values it pushed. */
    int (*push_outcome)(void *ud, lbk_task *joiner);
    /* The thread runs no more: the face may let its object go (which may
     * free the thread at once). */
    void (*finished)(void *ud);
} lbk_thread_hooks;

/* A thread not yet running; NULL when out of memory. */
lbk_thread *thread_new(const lbk_thread_hooks *hooks, void *ud);
void thread_free(lbk_thread *th);
/* t runs th from now on (t->thread is set: its end reaches thread_ended). */
void thread_attach(lbk_thread *th, lbk_task *t);

/* The server's task_ended hook, for a task whose t->thread is set. */
void thread_ended(lbk_task *t, int failed);

int thread_done(const lbk_thread *th);
int thread_ok(const lbk_thread *th);        /* done without raising */
lbk_task *thread_task(const lbk_thread *th);   /* while it runs, else NULL */

/* joiner waits for th to end: 0, or -1 when another task already waits.
 * The wait itself is sched_wait(..., th, ..., thread_undo_join, ...). */
int thread_join(lbk_thread *th, lbk_task *joiner);
void thread_undo_join(lbk_task *joiner);

#endif
