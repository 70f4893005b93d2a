/* lubeck.spawn's threads in plain C: which task runs one, which task joins
 * it, how it ended. See thread.h; the Lua side is host/lua/lua_thread.c. */
#include "thread.h"

#include <stdlib.h>

struct lbk_thread {
    lbk_task *task;              /* while it runs */
    lbk_task *joiner;            /* the task in t:wait() */
    int done, ok;
    const lbk_thread_hooks *hooks;
    void *ud;
};

lbk_thread *thread_new(const lbk_thread_hooks *hooks, void *ud)
{
    lbk_thread *th = calloc(1, sizeof *th);
    if (!th) return NULL;
    th->hooks = hooks;
    th->ud = ud;
    return th;
}

void thread_free(lbk_thread *th)
{
    free(th);
}

void thread_attach(lbk_thread *th, lbk_task *t)
{
    th->task = t;
    t->thread = th;
}

void thread_ended(lbk_task *t, int failed)
{
    lbk_thread *th = t->thread;
    t->thread = NULL;
    th->task = NULL;
    th->done = 1;
    th->ok = !failed;
    th->hooks->keep_results(th->ud, t, failed);
    if (th->joiner) {
        lbk_task *j = th->joiner;
        th->joiner = NULL;
        sched_wake(j, th->hooks->push_outcome(th->ud, j));
    }
    th->hooks->finished(th->ud);   /* th may be gone after this */
}

int thread_done(const lbk_thread *th)
{
    return th->done;
}

int thread_ok(const lbk_thread *th)
{
    return th->ok;
}

lbk_task *thread_task(const lbk_thread *th)
{
    return th->task;
}

int thread_join(lbk_thread *th, lbk_task *joiner)
{
    if (th->joiner) return -1;
    th->joiner = joiner;
    return 0;
}

void thread_undo_join(lbk_task *joiner)
{
    lbk_thread *th = joiner->wait_on;
    if (th && th->joiner == joiner) th->joiner = NULL;
}
