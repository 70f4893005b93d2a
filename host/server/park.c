/* Parked requests: those whose coroutine has waited at least once. They are
 * found by conn id (a disconnect notice cancels them) and kept in deadline
 * order (request_timeout answers 504 and cancels them). Requests answered
 * without waiting never enter either. */
#include "host.h"

#include <stdlib.h>
#include <string.h>

#include "flow.h"
#include "log.h"
#include "reply.h"
#include "scheduler.h"
#include "websocket.h"

/* park.c's own state: no other file reads it. */
struct lbk_park {
    lbk_req **conns;             /* conn id → parked requests (open hashing) */
    uint32_t conns_mask;
    lbk_req *dl_head, *dl_tail;  /* parked requests with a deadline, earliest first */
    uint32_t nparked;            /* requests in the conn map */
    unsigned cancel_round;       /* each cancellation wakes each task once */
    ev_timer deadline_timer;
};

static void deadline_rearm(lubeck *h)
{
    ev_timer_stop(h->loop, &h->park->deadline_timer);
    if (!h->park->dl_head) return;
    double in = h->park->dl_head->deadline - ev_now(h->loop);
    ev_timer_set(&h->park->deadline_timer, in > 0 ? in : 0, 0);
    ev_timer_start(h->loop, &h->park->deadline_timer);
}

static void conns_grow(lubeck *h)
{
    uint32_t size = h->park->conns ? (h->park->conns_mask + 1) * 2 : 1024;
    lbk_req **grown = calloc(size, sizeof *grown);
    if (!grown) return;   /* keep the old table: chains get longer, nothing breaks */
    for (uint32_t i = 0; h->park->conns && i <= h->park->conns_mask; i++) {
        for (lbk_req *r = h->park->conns[i], *next; r; r = next) {
            next = r->conn_next;
            r->conn_next = grown[r->m2.conn_id & (size - 1)];
            grown[r->m2.conn_id & (size - 1)] = r;
        }
    }
    free(h->park->conns);
    h->park->conns = grown;
    h->park->conns_mask = size - 1;
}

/* Called the first time a request's coroutine waits: from then on a disconnect
 * notice or its deadline can end it. Requests answered without waiting never
 * pay for this. */
void host_park(lubeck *h, lbk_req *r)
{
    if (r->parked || !h->park) return;
    if (!h->park->conns || h->park->nparked + 1 > 2 * (h->park->conns_mask + 1)) conns_grow(h);
    if (!h->park->conns) return;
    r->parked = 1;
    h->park->nparked++;
    lbk_req **bucket = &h->park->conns[r->m2.conn_id & h->park->conns_mask];
    r->conn_next = *bucket;
    *bucket = r;
    if (r->gen->request_timeout > 0 && !r->ws) {
        /* Requests mostly park in the order they came in, so this walk from
         * the tail is short; one that yielded first may park later. */
        r->deadline = r->started + r->gen->request_timeout;
        lbk_req *after = h->park->dl_tail;
        while (after && after->deadline > r->deadline) after = after->dl_prev;
        r->dl_prev = after;
        r->dl_next = after ? after->dl_next : h->park->dl_head;
        if (r->dl_next) r->dl_next->dl_prev = r; else h->park->dl_tail = r;
        if (after) after->dl_next = r; else h->park->dl_head = r;
        if (h->park->dl_head == r) deadline_rearm(h);
    }
}

void host_unpark(lubeck *h, lbk_req *r)
{
    if (!r->parked) return;
    r->parked = 0;
    h->park->nparked--;
    lbk_req **pp = &h->park->conns[r->m2.conn_id & h->park->conns_mask];
    while (*pp && *pp != r) pp = &(*pp)->conn_next;
    if (*pp) *pp = r->conn_next;
    r->conn_next = NULL;
    if (r->deadline > 0) {
        int was_head = h->park->dl_head == r;
        if (r->dl_prev) r->dl_prev->dl_next = r->dl_next; else h->park->dl_head = r->dl_next;
        if (r->dl_next) r->dl_next->dl_prev = r->dl_prev; else h->park->dl_tail = r->dl_prev;
        r->dl_prev = r->dl_next = NULL;
        if (was_head) deadline_rearm(h);
    }
}

void host_clear_deadline(lubeck *h, lbk_req *r)
{
    if (!r->parked) return;
    host_unpark(h, r);
    host_park(h, r);   /* back in the conn map, without a deadline since r->ws is set */
}

/* Wakes every coroutine of a parked request with nil, reason; from then on
 * nothing it writes reaches the client. The slot may be freed by the time this
 * returns. */
static void cancel_req(lubeck *h, lbk_req *r, const char *reason)
{
    double handle = host_req_handle(r);
    unsigned round = ++h->park->cancel_round;
    r->cancelled = reason;
    r->done = 1;
    if (strcmp(reason, "closed") == 0) r->conn_closed = 1;   /* gone, with or without a notice */
    /* Each cancel runs Lua that may end tasks (and the request): restart the walk
     * after each one, and stop when the request is gone. Each task is woken once
     * per round: one that yields bare right away waits for the loop like any
     * other (later waits return nil, reason at once). */
    for (;;) {
        r = host_req_from_handle(h, handle);
        if (!r) return;
        lbk_task *t = r->tasks;
        while (t && (t->wait == WAIT_NONE || t->cancel_round == round)) t = t->req_next;
        if (!t) return;
        t->cancel_round = round;
        sched_cancel(t, reason);
    }
}

void host_cancel_conn(lubeck *h, slice sender, uint32_t conn_id)
{
    if (!h->park || !h->park->conns) return;
    /* Collect first: cancelling runs Lua, which may finish and unlink requests. */
    double handles[64];
    int n = 0;
    for (lbk_req *r = h->park->conns[conn_id & h->park->conns_mask]; r && n < 64; r = r->conn_next)
        if (r->m2.conn_id == conn_id && r->m2.sender.n == sender.n &&
            memcmp(r->m2.sender.p, sender.p, sender.n) == 0)
            handles[n++] = host_req_handle(r);
    for (int i = 0; i < n; i++) {
        lbk_req *r = host_req_from_handle(h, handles[i]);
        if (r && !r->cancelled) cancel_req(h, r, "closed");
    }
}

/* Ends, silently, every live request match() picks (see host_front_reset).
 * Returns how many it ended. */
typedef int (*req_match_fn)(const lbk_req *r, const void *ud);

static int end_silently(lubeck *h, req_match_fn match, const void *ud)
{
    /* Collect first: cancelling runs Lua, which may end and reuse request slots. */
    double *handles = NULL;
    int n = 0, cap = 0, ended = 0;
    for (uint32_t i = 0; i < h->nreqs; i++) {
        lbk_req *r = h->reqs[i];
        if (!r->live || !match(r, ud)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            double *grown = realloc(handles, (size_t)cap * sizeof *grown);
            if (!grown) break;
            handles = grown;
        }
        handles[n++] = host_req_handle(r);
    }
    for (int i = 0; i < n; i++) {
        lbk_req *r = host_req_from_handle(h, handles[i]);
        if (!r) continue;
        if (r->ws) websocket_forget(h, r);   /* no close frame: the id is not ours any more */
        if (!r->cancelled) {
            ended++;
            cancel_req(h, r, "closed");
        }
    }
    free(handles);
    return ended;
}

static int same_sender(const lbk_req *r, const void *ud)
{
    const slice *sender = ud;
    return r->m2.sender.n == sender->n && memcmp(r->m2.sender.p, sender->p, sender->n) == 0;
}

void host_front_reset(lubeck *h, slice sender)
{
    end_silently(h, same_sender, &sender);
    flow_forget_sender(h, sender);   /* credits owed by the old Mongrel2 never come */
}

static int before_epoch(const lbk_req *r, const void *ud)
{
    const lbk_front *f = ud;
    return r->front == f->index && r->front_epoch != f->epoch;
}

int host_front_ended(lubeck *h, const lbk_front *f)
{
    int ended = end_silently(h, before_epoch, f);
    flow_forget_sender(h, slice_make(f->sender, f->sender_len));
    return ended;
}

void host_answer_unfinished(lubeck *h)
{
    static const slice retry[] = { SLICE_LIT("Retry-After"), SLICE_LIT("1") };
    for (uint32_t i = 0; i < h->nreqs; i++) {
        lbk_req *r = h->reqs[i];
        if (!r->live || r->done) continue;
        if (r->head_sent) {
            host_close_conn(h, r);   /* a stream (or a WebSocket) under way: only a close ends it */
        } else {
            r->keep_alive = 0;
            reply_spec spec = { .status = 503, .headers = retry, .nheaders = 1 };
            host_reply_defaults(h, r, &spec);
            host_respond(h, r, &spec, SLICE_LIT("Service Unavailable: shutting down, retry shortly\n"));
        }
        r->done = 1;
    }
}

static void answer_timeout(lubeck *h, lbk_req *r)
{
    lbk_gen *g = r->gen;
    log_warn("%.*s %.*s timed out after %gs: %s", (int)r->m2.method.n, r->m2.method.p,
             (int)r->m2.path.n, r->m2.path.p, g->request_timeout,
             r->done ? "cancelling the threads it spawned" : "answered 504");
    if (r->done) return;
    if (r->head_sent) {   /* a stream already under way: only a close can end it */
        host_close_conn(h, r);
        r->done = 1;
        return;
    }
    /* The app shapes the 504 page (HTML or JSON); if even that fails, a bare one. */
    lua_State *L = g->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->timeout_ref);
    lua_pushnumber(L, host_req_handle(r));
    if (lua_pcall(L, 1, 0, 0) != 0) {
        log_error("answering a timeout: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    if (!r->done) {
        reply_spec spec = { .status = 504 };
        host_reply_defaults(h, r, &spec);
        host_respond(h, r, &spec, SLICE_LIT(""));
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    lubeck *h = w->data;
    double now = ev_now(loop);
    while (h->park->dl_head && h->park->dl_head->deadline <= now) {
        lbk_req *r = h->park->dl_head;
        double handle = host_req_handle(r);
        /* Take it off the list first, so the loop always advances. */
        h->park->dl_head = r->dl_next;
        if (h->park->dl_head) h->park->dl_head->dl_prev = NULL; else h->park->dl_tail = NULL;
        r->dl_next = r->dl_prev = NULL;
        r->deadline = 0;
        answer_timeout(h, r);
        r = host_req_from_handle(h, handle);
        if (r && !r->cancelled) cancel_req(h, r, "timeout");
    }
    deadline_rearm(h);
}

int host_park_init(lubeck *h)
{
    h->park = calloc(1, sizeof *h->park);
    if (!h->park) return -1;
    ev_timer_init(&h->park->deadline_timer, deadline_cb, 0, 0);
    h->park->deadline_timer.data = h;
    return 0;
}

void host_park_free(lubeck *h)
{
    if (!h->park) return;
    ev_timer_stop(h->loop, &h->park->deadline_timer);
    free(h->park->conns);
    free(h->park);
    h->park = NULL;
}

uint32_t host_parked(const lubeck *h)
{
    return h->park ? h->park->nparked : 0;
}
