#include "scheduler.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "log.h"

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

lbk_task *sched_task_acquire(lbk_gen *g)
{
    lbk_task *t = g->free_tasks;
    if (t) {
        g->free_tasks = t->next;
    } else {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        t->co = lua_newthread(g->L);
        t->ref = luaL_ref(g->L, LUA_REGISTRYINDEX);   /* pops the thread */
        t->gen = g;
        ev_timer_init(&t->timer, timer_cb, 0, 0);
        t->timer.data = t;
    }
    t->next = t->req_prev = t->req_next = t->wait_prev = t->wait_next = NULL;
    t->req = NULL;
    t->thread = NULL;
    t->wait = WAIT_NONE;
    g->tasks++;
    g->sched->ntasks++;
    return t;
}

static void gen_task_gone(lbk_gen *g)
{
    lbk_sched *s = g->sched;
    g->tasks--;
    s->ntasks--;
    if (g->retired && g->tasks == 0 && s->hooks.gen_idle) s->hooks.gen_idle(s->ud, g);
}

static void task_release(lbk_task *t, int reusable)
{
    lbk_gen *g = t->gen;
    if (reusable) {
        lua_settop(t->co, 0);
        t->next = g->free_tasks;
        g->free_tasks = t;
    } else {
        /* A coroutine that died of an error cannot run again. */
        luaL_unref(g->L, LUA_REGISTRYINDEX, t->ref);
        free(t);
    }
    gen_task_gone(g);
}

void sched_task_drop(lbk_task *t)
{
    ev_timer_stop(t->gen->sched->loop, &t->timer);
    lbk_gen *g = t->gen;
    free(t);
    gen_task_gone(g);
}

static void ready_push(lbk_sched *h, lbk_task *t, int nargs)
{
    t->wait = WAIT_READY;
    t->ready_nargs = nargs;
    t->next = NULL;
    if (h->ready_tail) h->ready_tail->next = t; else h->ready_head = t;
    h->ready_tail = t;
    ev_idle_start(h->loop, &h->ready_idle);
}

static void ready_remove(lbk_sched *h, lbk_task *t)
{
    lbk_task **pp = &h->ready_head, *prev = NULL;
    while (*pp && *pp != t) { prev = *pp; pp = &(*pp)->next; }
    if (!*pp) return;
    *pp = t->next;
    if (h->ready_tail == t) h->ready_tail = prev;
}

static void run(lbk_task *t, int nargs)
{
    lbk_sched *h = t->gen->sched;
    lbk_task *outer = h->current;
    h->current = t;
    t->wait = WAIT_NONE;
    int rc = lua_resume(t->co, nargs);
    h->current = outer;
    if (rc == LUA_YIELD) {
        /* A host call records its wait before yielding; a bare coroutine.yield()
         * leaves none, and then just gives the others a turn. What was yielded
         * (the marker of a wait passed up from a coroutine of the handler's own)
         * goes: the wait's results are pushed later. */
        lua_settop(t->co, 0);
        if (t->wait == WAIT_NONE) ready_push(h, t, 0);
        return;
    }
    if (h->hooks.task_ended) h->hooks.task_ended(h->ud, t, rc != 0);
    task_release(t, rc == 0);
}

void sched_start(lbk_task *t, int nargs)
{
    run(t, nargs);
}

/* Leaves the current wait: stops its timer and, for timeouts and cancels,
 * unlinks the task from what it waited on. */
static void end_wait(lbk_task *t, int undo)
{
    lbk_sched *h = t->gen->sched;
    ev_timer_stop(h->loop, &t->timer);
    if (t->wait == WAIT_READY) {
        ready_remove(h, t);
        lua_pop(t->co, t->ready_nargs);
    }
    if (t->wait == WAIT_OTHER && undo && t->undo_fn) t->undo_fn(t);
    t->wait = WAIT_NONE;
    t->undo_fn = NULL;
    t->wait_on = NULL;
}

void sched_wake(lbk_task *t, int nvalues)
{
    end_wait(t, 0);
    ready_push(t->gen->sched, t, nvalues);
}

void sched_wake_result(lbk_task *t, int ok, const char *err)
{
    if (ok) {
        lua_pushboolean(t->co, 1);
        sched_wake(t, 1);
    } else {
        lua_pushnil(t->co);
        lua_pushstring(t->co, err);
        sched_wake(t, 2);
    }
}

void sched_complete(lbk_task *t, int nvalues)
{
    end_wait(t, 0);
    run(t, nvalues);
}

void sched_cancel(lbk_task *t, const char *reason)
{
    if (t->wait == WAIT_NONE) return;
    end_wait(t, 1);
    lua_pushnil(t->co);
    lua_pushstring(t->co, reason);
    run(t, 2);
}

void sched_unwait(lbk_task *t)
{
    if (t->wait == WAIT_NONE) return;
    end_wait(t, 1);
}

int sched_waits_on(const lbk_task *t, const void *obj)
{
    return t->wait == WAIT_OTHER && t->wait_on == obj;
}

lbk_task *sched_running(lbk_sched *h, lua_State *L, const char *what)
{
    lbk_task *t = h->current;
    if (!t) {
        luaL_error(L, "%s: only a request's code can wait (not the app's top level)", what);
        return NULL;
    }
    /* L may be a coroutine the handler made (lubeck.coroutine passes its waits up). */
    return t;
}

/* A host call made inside a coroutine of the handler's own yields this marker;
 * lubeck.coroutine's resume passes it up to the task's coroutine, and the
 * wait's results back down. */
static char wait_marker;

void *sched_wait_marker(void)
{
    return &wait_marker;
}

static int yield_task(lua_State *L, lbk_task *t)
{
    if (L == t->co) return lua_yield(L, 0);
    lua_pushlightuserdata(L, &wait_marker);
    return lua_yield(L, 1);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    lbk_task *t = w->data;
    if (t->wait == WAIT_TIMER) {
        t->wait = WAIT_NONE;
        lua_pushboolean(t->co, 1);
        run(t, 1);
        return;
    }
    int as_false = t->timeout_false;
    end_wait(t, 1);
    if (as_false) lua_pushboolean(t->co, 0); else lua_pushnil(t->co);
    lua_pushliteral(t->co, "timeout");
    run(t, 2);
}

/* The server may refuse a wait (a cancelled request's code never waits
 * again) or note that it began (the request becomes reachable by disconnect
 * notices and its deadline). */
static int refuse_or_park(lua_State *L, lbk_task *t)
{
    lbk_sched *s = t->gen->sched;
    return s->hooks.wait_begins ? s->hooks.wait_begins(s->ud, t, L) : 0;
}

int sched_sleep(lua_State *L, lbk_task *t, double seconds)
{
    lbk_sched *h = t->gen->sched;
    int refused = refuse_or_park(L, t);
    if (refused) return refused;
    ev_timer_set(&t->timer, seconds > 0 ? seconds : 0, 0);
    ev_timer_start(h->loop, &t->timer);
    t->wait = WAIT_TIMER;
    return yield_task(L, t);
}

int sched_wait(lua_State *L, lbk_task *t, void *wait_on, double timeout, lbk_undo_fn undo,
               int timeout_false)
{
    lbk_sched *h = t->gen->sched;
    int refused = refuse_or_park(L, t);
    if (refused) {
        if (undo) { t->wait_on = wait_on; undo(t); t->wait_on = NULL; }
        return refused;
    }
    t->wait = WAIT_OTHER;
    t->wait_on = wait_on;
    t->undo_fn = undo;
    t->timeout_false = timeout_false;
    if (timeout >= 0) {
        ev_timer_set(&t->timer, timeout, 0);
        ev_timer_start(h->loop, &t->timer);
    }
    return yield_task(L, t);
}

static void ready_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    lbk_sched *h = w->data;
    /* Run only the tasks queued so far: one that yields again waits a turn. */
    int n = 0;
    for (lbk_task *t = h->ready_head; t; t = t->next) n++;
    while (n-- > 0 && h->ready_head) {
        lbk_task *t = h->ready_head;
        h->ready_head = t->next;
        if (!h->ready_head) h->ready_tail = NULL;
        run(t, t->ready_nargs);
    }
    if (!h->ready_head) ev_idle_stop(loop, w);
}

void sched_init(lbk_sched *s, struct ev_loop *loop, const lbk_sched_hooks *hooks, void *ud)
{
    s->loop = loop;
    s->current = NULL;
    s->ntasks = 0;
    s->ready_head = s->ready_tail = NULL;
    s->hooks = *hooks;
    s->ud = ud;
    ev_idle_init(&s->ready_idle, ready_cb);
    s->ready_idle.data = s;
}

void sched_stop(lbk_sched *s)
{
    if (!s->loop) return;   /* never started */
    ev_idle_stop(s->loop, &s->ready_idle);
    s->ready_head = s->ready_tail = NULL;
}

void sched_gen_close(lbk_gen *g)
{
    while (g->free_tasks) {
        lbk_task *t = g->free_tasks;
        g->free_tasks = t->next;
        free(t);   /* the threads themselves go with lua_close */
    }
}
