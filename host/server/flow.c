/* Mongrel2's download flow control: the per-connection window (flow.h and
 * docs/flow-control.md).
 *
 * Why this cannot overrun Mongrel2: with download.flow_control=1 its enqueue
 * check is "queued bytes + this message <= 100 KiB", its queued bytes drop
 * when its writer takes a message off the queue, and the credits notice for a
 * message goes out only after that message was written. So Mongrel2's queued
 * bytes never exceed our in_flight (bytes sent minus bytes credited), and we
 * never let in_flight pass the window: no message is ever refused. A close
 * (an empty message) counts 0 bytes and always fits. */
#include "flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"

#define FLOW_MIN_BUCKETS 256

typedef struct flow_piece {
    struct flow_piece *next;
    size_t len;
    char data[];
} flow_piece;

typedef struct flow_conn {
    struct flow_conn *next;       /* hash chain */
    lubeck *h;
    uint32_t id;
    size_t in_flight;             /* sent to Mongrel2, not yet reported written */
    flow_piece *head, *tail;      /* the backlog, in order */
    size_t backlog;
    flow_waiter *waiters;
    ev_timer stall;               /* runs while the backlog is not empty */
    size_t sender_len;
    char sender[];
} flow_conn;

struct lbk_flows {
    flow_conn **buckets;
    uint32_t mask, count;
    size_t window;
    size_t piece;                 /* backlog pieces: a quarter of the window */
    double send_timeout;
};

/* ---- the table ------------------------------------------------------------- */

static struct lbk_flows *flows_of(lubeck *h)
{
    if (h->flows) return h->flows;
    struct lbk_flows *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->send_timeout = FLOW_SEND_TIMEOUT;
    const char *env = getenv("LUBECK_SEND_TIMEOUT");
    if (env && atof(env) > 0) f->send_timeout = atof(env);
    h->flows = f;
    return f;
}

size_t flow_window(const lubeck *h)
{
    return h->flows ? h->flows->window : 0;
}

static flow_conn *find(lubeck *h, slice sender, uint32_t id)
{
    struct lbk_flows *f = h->flows;
    if (!f || !f->buckets) return NULL;
    for (flow_conn *c = f->buckets[id & f->mask]; c; c = c->next)
        if (c->id == id && c->sender_len == sender.n && memcmp(c->sender, sender.p, sender.n) == 0)
            return c;
    return NULL;
}

static int grow(struct lbk_flows *f)
{
    uint32_t size = f->buckets ? (f->mask + 1) * 2 : FLOW_MIN_BUCKETS;
    flow_conn **fresh = calloc(size, sizeof *fresh);
    if (!fresh) return f->buckets ? 0 : -1;   /* keep the old table: longer chains */
    for (uint32_t i = 0; f->buckets && i <= f->mask; i++)
        for (flow_conn *c = f->buckets[i], *next; c; c = next) {
            next = c->next;
            c->next = fresh[c->id & (size - 1)];
            fresh[c->id & (size - 1)] = c;
        }
    free(f->buckets);
    f->buckets = fresh;
    f->mask = size - 1;
    return 0;
}

static void stall_cb(struct ev_loop *loop, ev_timer *w, int revents);

static flow_conn *find_or_add(lubeck *h, slice sender, uint32_t id)
{
    flow_conn *c = find(h, sender, id);
    if (c) return c;
    struct lbk_flows *f = h->flows;
    if ((!f->buckets || f->count >= 2 * (f->mask + 1)) && grow(f) != 0) return NULL;
    if (!(c = calloc(1, sizeof *c + sender.n))) return NULL;
    c->h = h;
    c->id = id;
    c->sender_len = sender.n;
    memcpy(c->sender, sender.p, sender.n);
    ev_timer_init(&c->stall, stall_cb, 0, 0);
    c->stall.data = c;
    c->next = f->buckets[id & f->mask];
    f->buckets[id & f->mask] = c;
    f->count++;
    return c;
}

/* Frees an entry already out of the table. */
static void conn_release(flow_conn *c)
{
    ev_timer_stop(c->h->loop, &c->stall);
    while (c->head) {
        flow_piece *p = c->head;
        c->head = p->next;
        free(p);
    }
    free(c);
}

static void conn_free(flow_conn *c)
{
    struct lbk_flows *f = c->h->flows;
    flow_conn **pp = &f->buckets[c->id & f->mask];
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    f->count--;
    conn_release(c);
}

/* Nothing in flight, nothing waiting, nobody watching: forget it. */
static void forget_if_idle(flow_conn *c)
{
    if (c->in_flight == 0 && !c->head && !c->waiters) conn_free(c);
}

/* Every waiter hears open (1: the backlog is empty; 0: the connection ended). */
static void tell_waiters(flow_conn *c, int open)
{
    flow_waiter *w = c->waiters;
    c->waiters = NULL;
    while (w) {
        flow_waiter *next = w->next;
        w->next = NULL;
        w->conn = NULL;
        w->fn(w->ud, open);
        w = next;
    }
}

/* ---- sending --------------------------------------------------------------- */

static slice sender_of(const flow_conn *c)
{
    return slice_make(c->sender, c->sender_len);
}

/* The pieces at the head of the backlog that fit the window go out. */
static void pump(flow_conn *c)
{
    size_t window = c->h->flows->window;
    while (c->head && c->in_flight + c->head->len <= window) {
        flow_piece *p = c->head;
        c->head = p->next;
        if (!c->head) c->tail = NULL;
        c->backlog -= p->len;
        c->in_flight += p->len;
        host_send_now(c->h, sender_of(c), &c->id, 1, slice_make(p->data, p->len), SLICE_LIT(""),
                      SLICE_LIT(""));
        free(p);
    }
    if (c->head) {
        if (!ev_is_active(&c->stall)) {
            ev_timer_set(&c->stall, c->h->flows->send_timeout, 0);
            ev_timer_start(c->h->loop, &c->stall);
        }
    } else {
        ev_timer_stop(c->h->loop, &c->stall);
        if (c->waiters) tell_waiters(c, 1);
    }
}

static int add_piece(flow_conn *c, const char *p, size_t n)
{
    flow_piece *piece = malloc(sizeof *piece + n);
    if (!piece) return -1;
    piece->next = NULL;
    piece->len = n;
    if (n) memcpy(piece->data, p, n);
    if (c->tail) c->tail->next = piece; else c->head = piece;
    c->tail = piece;
    c->backlog += n;
    return 0;
}

/* The message joins the backlog in pieces of at most f->piece bytes (raw bytes
 * to the client: where one message ends and the next begins does not matter).
 * An empty message (the close) is a piece of its own. */
static int enqueue(flow_conn *c, const slice *parts, int nparts)
{
    size_t piece = c->h->flows->piece, total = 0;
    for (int i = 0; i < nparts; i++) total += parts[i].n;
    if (total == 0) return add_piece(c, "", 0);
    char *buf = malloc(piece);
    if (!buf) return -1;
    size_t used = 0;
    for (int i = 0; i < nparts; i++)
        for (size_t at = 0; at < parts[i].n;) {
            size_t take = parts[i].n - at < piece - used ? parts[i].n - at : piece - used;
            memcpy(buf + used, parts[i].p + at, take);
            used += take;
            at += take;
            if (used == piece) {
                if (add_piece(c, buf, used) != 0) goto fail;
                used = 0;
            }
        }
    if (used && add_piece(c, buf, used) != 0) goto fail;
    free(buf);
    return 0;
fail:
    free(buf);
    return -1;
}

int flow_send(lubeck *h, slice sender, uint32_t id, slice a, slice b, slice cpart)
{
    size_t window = flow_window(h), len = a.n + b.n + cpart.n;
    flow_conn *c = window ? find(h, sender, id) : NULL;
    if (!window || ((!c || !c->head) && (c ? c->in_flight : 0) + len <= window)) {
        if (window && len) {
            if (!c && !(c = find_or_add(h, sender, id))) return -1;
            c->in_flight += len;
        }
        host_send_now(h, sender, &id, 1, a, b, cpart);
        return 0;
    }
    if (!c && !(c = find_or_add(h, sender, id))) return -1;
    slice parts[3] = { a, b, cpart };
    if (enqueue(c, parts, 3) != 0) {
        log_error_limited("connection %u: out of memory: a reply was dropped", id);
        return -1;
    }
    pump(c);
    return 0;
}

/* A frame to many connections (app:deliver): one message to those with room,
 * the backlog of each of the others. */
void flow_send_ids(lubeck *h, slice sender, const uint32_t *ids, int n, slice body)
{
    size_t window = flow_window(h);
    if (!window) {
        host_send_now(h, sender, ids, n, body, SLICE_LIT(""), SLICE_LIT(""));
        return;
    }
    uint32_t now[M2_MAX_TARGETS];
    int k = 0;
    for (int i = 0; i < n && i < M2_MAX_TARGETS; i++) {
        flow_conn *c = find(h, sender, ids[i]);
        if ((!c || !c->head) && (c ? c->in_flight : 0) + body.n <= window &&
            (c || (c = find_or_add(h, sender, ids[i])))) {
            c->in_flight += body.n;
            now[k++] = ids[i];
        } else {
            flow_send(h, sender, ids[i], body, SLICE_LIT(""), SLICE_LIT(""));
        }
    }
    if (k) host_send_now(h, sender, now, k, body, SLICE_LIT(""), SLICE_LIT(""));
}

size_t flow_backlog(lubeck *h, slice sender, uint32_t id)
{
    flow_conn *c = flow_window(h) ? find(h, sender, id) : NULL;
    return c ? c->backlog + (c->head ? 1 : 0) : 0;   /* a waiting close counts too */
}

int flow_watch(lubeck *h, slice sender, uint32_t id, flow_waiter *w)
{
    flow_conn *c = flow_window(h) ? find(h, sender, id) : NULL;
    if (!c || !c->head) return 0;
    if (w->conn) return 1;                  /* already watching */
    w->conn = c;
    w->next = c->waiters;
    c->waiters = w;
    return 1;
}

void flow_unwatch(lubeck *h, flow_waiter *w)
{
    (void)h;
    flow_conn *c = w->conn;
    if (!c) return;
    for (flow_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    w->conn = NULL;
    w->next = NULL;
    forget_if_idle(c);
}

/* ---- what Mongrel2 tells us -------------------------------------------------- */

static void set_window(lubeck *h, size_t window)
{
    struct lbk_flows *f = window > 0 ? flows_of(h) : NULL;
    if (!f) return;
    f->window = window;
    f->piece = window / 4 ? window / 4 : 1;
}

/* A client that sends a new request (not a WebSocket frame, not a pipelined
 * one) has read every reply before it, so Mongrel2 wrote them all. This also
 * covers credits notices that Mongrel2 handed to another host on the same
 * front, which this host never sees: without it a keep-alive connection would
 * stall once 100 KiB of replies had gone unreported. */
static void request_settles(lubeck *h, const m2_request *m)
{
    flow_conn *c = find(h, m->sender, m->conn_id);
    if (!c || c->head || slice_eq(m->method, "WEBSOCKET")) return;
    c->in_flight = 0;
    forget_if_idle(c);
}

void flow_request_seen(lubeck *h, const m2_request *m)
{
    if (h->flows && h->flows->window) {
        request_settles(h, m);
        return;
    }
    const m2_header *hd = m2_header_get(m, "DOWNLOAD_CREDITS", 16);
    if (!hd) return;
    char digits[24];
    size_t n = hd->value.n < sizeof digits - 1 ? hd->value.n : sizeof digits - 1;
    memcpy(digits, hd->value.p, n);
    digits[n] = '\0';
    long window = strtol(digits, NULL, 10);
    if (window > 0) set_window(h, (size_t)window);
}

size_t flow_credits_written(const m2_request *m)
{
    const m2_header *hd = m2_header_get(m, "DOWNLOAD_CREDITS", 16);
    size_t written = 0;
    for (size_t i = 0; hd && i < hd->value.n && hd->value.p[i] >= '0' && hd->value.p[i] <= '9'; i++)
        written = written * 10 + (size_t)(hd->value.p[i] - '0');
    return written;
}

int flow_credit(lubeck *h, slice sender, uint32_t id, size_t written)
{
    /* Credits before any request with DOWNLOAD_CREDITS (this worker started
     * while Mongrel2's keep-alive connections were open): the mode is on. */
    if (!flow_window(h)) set_window(h, FLOW_MONGREL2_WINDOW);
    flow_conn *c = find(h, sender, id);
    if (!c) return 0;
    /* More than we counted: bytes another worker sent (or sent before a restart). */
    c->in_flight = written < c->in_flight ? c->in_flight - written : 0;
    if (c->head) {
        ev_timer_stop(h->loop, &c->stall);   /* the client reads: a fresh send_timeout */
        pump(c);                             /* its waiters run: look c up again */
        if (!(c = find(h, sender, id))) return 1;
    }
    forget_if_idle(c);
    return 1;
}

void flow_gone(lubeck *h, slice sender, uint32_t id)
{
    flow_conn *c = find(h, sender, id);
    if (!c) return;
    tell_waiters(c, 0);
    conn_free(c);
}

void flow_forget_sender(lubeck *h, slice sender)
{
    struct lbk_flows *f = h->flows;
    if (!f || !f->buckets || !sender.n) return;
    /* Unlink them all first: a waiter's callback may send, and must not find them. */
    flow_conn *gone = NULL;
    for (uint32_t i = 0; i <= f->mask; i++)
        for (flow_conn **pp = &f->buckets[i]; *pp;) {
            flow_conn *c = *pp;
            if (c->sender_len == sender.n && memcmp(c->sender, sender.p, sender.n) == 0) {
                *pp = c->next;
                f->count--;
                c->next = gone;
                gone = c;
            } else {
                pp = &c->next;
            }
        }
    while (gone) {
        flow_conn *c = gone;
        gone = c->next;
        tell_waiters(c, 0);
        conn_release(c);
    }
}

/* The client read nothing for send_timeout while data waited for it: Mongrel2
 * is told to drop it (X ctl cancel) and its requests end as if it had left. */
static void stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    flow_conn *c = w->data;
    lubeck *h = c->h;
    log_warn("connection %u read nothing for %gs while %zu bytes waited: closing it",
             c->id, h->flows->send_timeout, c->backlog);
    char frame[160];
    int n = snprintf(frame, sizeof frame, "%.*s %d:X %u, 23:3:ctl,13:6:cancel,1:1,}]",
                     (int)c->sender_len, c->sender, 2 + snprintf(NULL, 0, "%u", c->id), c->id);
    if (n > 0 && (size_t)n < sizeof frame)
        host_send_frame(h, slice_make(frame, (size_t)n));
    char sender[128];
    size_t sn = c->sender_len < sizeof sender ? c->sender_len : sizeof sender;
    memcpy(sender, c->sender, sn);
    uint32_t id = c->id;
    tell_waiters(c, 0);
    conn_free(c);
    host_cancel_conn(h, slice_make(sender, sn), id);
}

void flow_free_all(lubeck *h)
{
    struct lbk_flows *f = h->flows;
    if (!f) return;
    for (uint32_t i = 0; f->buckets && i <= f->mask; i++)
        while (f->buckets[i]) {
            flow_conn *c = f->buckets[i];
            for (flow_waiter *w = c->waiters; w; w = w->next) w->conn = NULL;
            c->waiters = NULL;
            conn_free(c);
        }
    free(f->buckets);
    free(f);
    h->flows = NULL;
}
