/* WebSockets through Mongrel2 (PROTOCOL.md §5).
 *
 * Mongrel2 reassembles the client's fragments and unmasks them; every message
 * reaches a handler as a frame with METHOD WEBSOCKET and FLAGS (the first byte
 * of the client frame, FIN forced on). Everything else is ours: the 101 answer
 * (the accept key is the handshake's BODY), server frames (never masked), pongs,
 * close echoes and the empty frame that makes Mongrel2 close the socket.
 *
 * A connection is a ws_conn, found by (sender, conn id) in a per-host table,
 * owned by the handshake request: its coroutine is the session, which takes
 * messages from the connection's inbox one at a time (ws_receive). The request
 * ends when the session and the threads it spawned have ended; the connection
 * goes with it (websocket_req_ended).
 *
 * Back-pressure. Mongrel2 queues at most 16 messages per connection and drops
 * the client when a 17th arrives (DELIVER_OUTSTANDING_MSGS); it reads its SUB
 * socket in a loop without yielding while messages are pending, so a burst of
 * more than 16 frames to one connection overflows even when the client reads
 * fast. Two ways to pace: download.flow_control=1 (credits notices), or a budget
 * of frames per short window. We pace by window, because flow control is a
 * server-wide setting with costs the whole app pays: every write to any
 * connection sends a credits notice back (doubling the messages for plain HTTP,
 * and with --workers each notice for a WebSocket would need the bus), and its
 * limit of 100 KiB outstanding bytes per connection (MAX_CREDITS) refuses any
 * single HTTP response or WebSocket message larger than that. So: at most
 * WS_PACE_FRAMES frames and WS_PACE_BYTES bytes per connection per
 * WS_PACE_WINDOW; a send past that budget suspends its coroutine until the next
 * window (frames keep their order). Mongrel2 drains its queue whenever its
 * handler task runs out of input, so half of its queue per 2 ms leaves room for
 * a Mongrel2 that stalls a few ms. Without an acknowledgement no window can see
 * a client that stops reading: Mongrel2 then drops it and its disconnect notice
 * ends the session (on_close 1006). When more than WS_MAX_WAITING frames (or
 * WS_MAX_WAITING_BYTES) wait on one connection, the handler is producing faster
 * than any window lets through: the connection is closed with 1008 and the
 * reason logged. */
#include "websocket.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "scheduler.h"

#define WS_PACE_WINDOW 0.002             /* seconds */
#define WS_PACE_FRAMES 8                 /* half of Mongrel2's per-connection queue */
#define WS_PACE_BYTES (256 * 1024)
#define WS_MAX_WAITING 64                /* frames waiting for the window: then 1008 */
#define WS_MAX_WAITING_BYTES (8 * 1024 * 1024)
#define WS_INBOX_MAX 1024                /* messages not yet taken by the session: then 1008 */
#define WS_INBOX_MAX_BYTES (32 * 1024 * 1024)
#define WS_MAX_MESSAGE (16 * 1024 * 1024)   /* a longer client message: 1009 */
#define WS_CLOSE_WAIT 2.0                /* after our close frame, the client has this long */
#define WS_MAX_CONTROL 125
#define WS_MIN_BUCKETS 256

typedef struct ws_msg {
    struct ws_msg *next;
    int op;                      /* WS_OP_TEXT, WS_OP_BINARY or WS_OP_CLOSE */
    int code;                    /* close code */
    size_t len;
    char data[];
} ws_msg;

/* A frame waiting for the pacing window; its task (if any) resumes once it left. */
typedef struct ws_pending {
    struct ws_pending *next;
    lbk_task *task;
    size_t len;
    char frame[];
} ws_pending;

typedef struct lbk_ws_conn {
    struct lbk_ws_conn *next;    /* hash chain */
    lubeck *h;
    lbk_req *req;                /* the session request; the sender points into it */
    slice sender;
    uint32_t id;
    int registered;
    ws_msg *in_head, *in_tail;
    int in_count;
    size_t in_bytes;
    lbk_task *reader;            /* the session, waiting in ws_receive */
    ws_pending *out_head, *out_tail;
    int out_count;
    size_t out_bytes;
    double win_start;
    int win_frames;
    size_t win_bytes;
    ev_timer pace;
    ev_timer close_wait;
    int close_code;              /* what our close frame said */
    char close_reason[WS_MAX_CONTROL + 1];
    unsigned closing : 1;        /* our close frame is out (or queued): no more data */
    unsigned closed : 1;         /* the empty frame is out, or the client is gone */
} ws_conn;

struct lbk_websockets {
    ws_conn **buckets;
    uint32_t mask, count;
};

/* ---- frames and UTF-8 (pure; unit-tested) --------------------------------- */

size_t websocket_frame_header(unsigned char out[WS_MAX_HEADER], int opcode, uint64_t len)
{
    out[0] = (unsigned char)(0x80 | (opcode & 0x0f));    /* FIN, no RSV bits */
    if (len < 126) {
        out[1] = (unsigned char)len;                     /* no mask bit: server frames */
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

int websocket_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    while (s < end) {
        unsigned c = *s;
        if (c < 0x80) { s++; continue; }
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;    /* the range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) need = 1;
        else if (c == 0xe0) { need = 2; lo = 0xa0; }          /* no overlongs */
        else if (c == 0xed) { need = 2; hi = 0x9f; }          /* no surrogates */
        else if (c >= 0xe1 && c <= 0xef) need = 2;
        else if (c == 0xf0) { need = 3; lo = 0x90; }
        else if (c == 0xf4) { need = 3; hi = 0x8f; }          /* up to U+10FFFF */
        else if (c >= 0xf1 && c <= 0xf3) need = 3;
        else return 0;
        if ((size_t)(end - s) <= need) return 0;
        if (s[1] < lo || s[1] > hi) return 0;
        for (size_t i = 2; i <= need; i++)
            if ((s[i] & 0xc0) != 0x80) return 0;
        s += need + 1;
    }
    return 1;
}

/* ---- the table of connections ---------------------------------------------- */

static ws_conn *find(lubeck *h, slice sender, uint32_t id)
{
    struct lbk_websockets *w = h->websockets;
    if (!w) return NULL;
    for (ws_conn *c = w->buckets[id & w->mask]; c; c = c->next)
        if (c->id == id && c->sender.n == sender.n && memcmp(c->sender.p, sender.p, sender.n) == 0)
            return c;
    return NULL;
}

static void unregister(lubeck *h, ws_conn *c)
{
    if (!c->registered) return;
    struct lbk_websockets *w = h->websockets;
    ws_conn **pp = &w->buckets[c->id & w->mask];
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    c->next = NULL;
    c->registered = 0;
    w->count--;
}

static int grow(struct lbk_websockets *w)
{
    uint32_t size = w->buckets ? (w->mask + 1) * 2 : WS_MIN_BUCKETS;
    ws_conn **fresh = calloc(size, sizeof *fresh);
    if (!fresh) return w->buckets ? 0 : -1;   /* keep the old table: longer chains */
    for (uint32_t i = 0; w->buckets && i <= w->mask; i++)
        for (ws_conn *c = w->buckets[i], *next; c; c = next) {
            next = c->next;
            c->next = fresh[c->id & (size - 1)];
            fresh[c->id & (size - 1)] = c;
        }
    free(w->buckets);
    w->buckets = fresh;
    w->mask = size - 1;
    return 0;
}

static int register_conn(lubeck *h, ws_conn *c)
{
    if (!h->websockets && !(h->websockets = calloc(1, sizeof *h->websockets))) return -1;
    struct lbk_websockets *w = h->websockets;
    if ((!w->buckets || w->count >= 2 * (w->mask + 1)) && grow(w) != 0) return -1;
    c->next = w->buckets[c->id & w->mask];
    w->buckets[c->id & w->mask] = c;
    c->registered = 1;
    w->count++;
    return 0;
}

/* ---- sending ---------------------------------------------------------------- */

/* A whole frame in one buffer (the caller frees it); NULL when out of memory. */
static char *build_frame(int op, const char *p, size_t n, size_t *len)
{
    unsigned char hd[WS_MAX_HEADER];
    size_t hn = websocket_frame_header(hd, op, n);
    char *f = malloc(hn + n + 1);
    if (!f) return NULL;
    memcpy(f, hd, hn);
    if (n) memcpy(f + hn, p, n);
    *len = hn + n;
    return f;
}

static void emit(ws_conn *c, const char *frame, size_t len)
{
    host_send_ids(c->h, c->sender, &c->id, 1, slice_make(frame, len));
}

/* Control frames and small ones go out from the stack. */
static void emit_frame(ws_conn *c, int op, const char *p, size_t n)
{
    char stack[WS_MAX_HEADER + 256];
    unsigned char hd[WS_MAX_HEADER];
    size_t hn = websocket_frame_header(hd, op, n);
    char *f = hn + n <= sizeof stack ? stack : malloc(hn + n);
    if (!f) return;
    memcpy(f, hd, hn);
    if (n) memcpy(f + hn, p, n);
    emit(c, f, hn + n);
    if (f != stack) free(f);
}

/* Does a frame of len bytes fit this window? Opens a new one when it is over. */
static int fits_window(ws_conn *c, size_t len)
{
    double now = ev_now(c->h->loop);
    if (now - c->win_start >= WS_PACE_WINDOW) {
        c->win_start = now;
        c->win_frames = 0;
        c->win_bytes = 0;
    }
    return c->win_frames == 0 ||
           (c->win_frames < WS_PACE_FRAMES && c->win_bytes + len <= WS_PACE_BYTES);
}

static void count_frame(ws_conn *c, size_t len)
{
    c->win_frames++;
    c->win_bytes += len;
}

/* Resumes the task of a pending frame with value (true: sent; nil, "closed"). */
static void resume_sender(lbk_task *t, int sent)
{
    if (!t) return;
    if (sent) {
        lua_pushboolean(t->co, 1);
        sched_wake(t, 1);
    } else {
        lua_pushnil(t->co);
        lua_pushliteral(t->co, "closed");
        sched_wake(t, 2);
    }
}

static void drop_pending(ws_conn *c)
{
    while (c->out_head) {
        ws_pending *p = c->out_head;
        c->out_head = p->next;
        if (p->task) p->task->wait_on = NULL;
        resume_sender(p->task, 0);
        free(p);
    }
    c->out_tail = NULL;
    c->out_count = 0;
    c->out_bytes = 0;
    ev_timer_stop(c->h->loop, &c->pace);
}

static void push_event(ws_conn *c, int op, int code, const char *p, size_t n);

/* The connection ends here: the empty frame makes Mongrel2 flush and close. */
static void close_now(ws_conn *c)
{
    if (c->closed) return;
    c->closed = 1;
    c->closing = 1;
    ev_timer_stop(c->h->loop, &c->close_wait);
    drop_pending(c);
    host_send_ids(c->h, c->sender, &c->id, 1, SLICE_LIT(""));
}

static void put_close_payload(char *out, int code, const char *reason, size_t n)
{
    out[0] = (char)(code >> 8);
    out[1] = (char)code;
    memcpy(out + 2, reason, n);
}

/* We end the connection because of the client (or of the handler's pace):
 * close frame with code, the empty frame, and the session hears the same. */
static void fail(ws_conn *c, int code, const char *reason)
{
    if (c->closed) return;
    size_t n = strlen(reason);
    char payload[WS_MAX_CONTROL];
    put_close_payload(payload, code, reason, n);
    drop_pending(c);
    if (!c->closing) emit_frame(c, WS_OP_CLOSE, payload, n + 2);
    close_now(c);
    push_event(c, WS_OP_CLOSE, code, reason, n);
}

static void pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ws_conn *c = w->data;
    while (c->out_head && fits_window(c, c->out_head->len)) {
        ws_pending *p = c->out_head;
        c->out_head = p->next;
        if (!c->out_head) c->out_tail = NULL;
        c->out_count--;
        c->out_bytes -= p->len;
        count_frame(c, p->len);
        emit(c, p->frame, p->len);
        if (p->task) p->task->wait_on = NULL;
        resume_sender(p->task, 1);
        free(p);
    }
    if (c->out_head) {
        ev_timer_set(w, WS_PACE_WINDOW, 0);
        ev_timer_start(loop, w);
    }
}

static ws_pending *queue_frame(ws_conn *c, char *frame, size_t len, lbk_task *t)
{
    ws_pending *p = malloc(sizeof *p + len);
    if (!p) return NULL;
    p->next = NULL;
    p->task = t;
    p->len = len;
    memcpy(p->frame, frame, len);
    if (c->out_tail) c->out_tail->next = p; else c->out_head = p;
    c->out_tail = p;
    c->out_count++;
    c->out_bytes += len;
    if (!ev_is_active(&c->pace)) {
        double left = WS_PACE_WINDOW - (ev_now(c->h->loop) - c->win_start);
        ev_timer_set(&c->pace, left > 0 ? left : 0, 0);
        ev_timer_start(c->h->loop, &c->pace);
    }
    return p;
}

/* A sender that waited for the window was cancelled (its client went away, or
 * its request timed out): its frame stays unsent. */
static void undo_send(lbk_task *t)
{
    ws_conn *c = t->wait_on;
    if (!c) return;
    for (ws_pending **pp = &c->out_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        if ((*pp)->task != t) continue;
        ws_pending *p = *pp;
        *pp = p->next;
        if (c->out_tail == p) c->out_tail = prev;
        c->out_count--;
        c->out_bytes -= p->len;
        free(p);
        return;
    }
}

/* ---- receiving ---------------------------------------------------------------- */

/* Pushes an event on the session's stack the way ws_receive returns it. */
static int push_values(lua_State *L, int op, int code, const char *p, size_t n)
{
    if (op == WS_OP_CLOSE) {
        lua_pushliteral(L, "close");
        lua_pushinteger(L, code);
        lua_pushlstring(L, p, n);
        return 3;
    }
    if (op == WS_OP_TEXT) lua_pushliteral(L, "text"); else lua_pushliteral(L, "binary");
    lua_pushlstring(L, p, n);
    return 2;
}

static void push_event(ws_conn *c, int op, int code, const char *p, size_t n)
{
    lbk_task *t = c->reader;
    if (t) {
        c->reader = NULL;
        t->wait_on = NULL;
        sched_wake(t, push_values(t->co, op, code, p, n));
        return;
    }
    if (op != WS_OP_CLOSE && (c->in_count >= WS_INBOX_MAX || c->in_bytes + n > WS_INBOX_MAX_BYTES)) {
        log_warn("websocket %u: %d messages (%zu bytes) wait for a handler that does not take "
                 "them: closing the connection (1008)", c->id, c->in_count, c->in_bytes);
        fail(c, 1008, "too many messages waiting");
        return;
    }
    ws_msg *m = malloc(sizeof *m + n);
    if (!m) {
        log_error_limited("websocket %u: out of memory: message dropped", c->id);
        return;
    }
    m->next = NULL;
    m->op = op;
    m->code = code;
    m->len = n;
    if (n) memcpy(m->data, p, n);
    if (c->in_tail) c->in_tail->next = m; else c->in_head = m;
    c->in_tail = m;
    c->in_count++;
    c->in_bytes += n;
}

static int close_code_ok(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static void on_client_close(ws_conn *c, const char *p, size_t n)
{
    int code = 1005;   /* "no status received" */
    const char *reason = "";
    size_t rn = 0;
    if (n == 1) return fail(c, 1002, "bad close frame");
    if (n >= 2) {
        code = ((unsigned char)p[0] << 8) | (unsigned char)p[1];
        reason = p + 2;
        rn = n - 2;
        if (!close_code_ok(code)) return fail(c, 1002, "bad close code");
        if (!websocket_utf8_valid(reason, rn)) return fail(c, 1007, "invalid UTF-8 in the close reason");
    }
    /* The echo (unless this answers our own close), then the close itself. */
    if (!c->closing) {
        drop_pending(c);
        emit_frame(c, WS_OP_CLOSE, p, n);
    }
    close_now(c);
    push_event(c, WS_OP_CLOSE, code, reason, rn);
}

/* One client message for a connection of ours. */
static void deliver(ws_conn *c, unsigned flags, const char *p, size_t n)
{
    if (c->closed) return;
    int op = (int)(flags & 0x0f);
    if (flags & 0x70) return fail(c, 1002, "no extension was negotiated (RSV bits set)");
    switch (op) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->closing) return;   /* we said goodbye: only the close answer counts now */
        if (n > WS_MAX_MESSAGE) return fail(c, 1009, "message too big");
        if (op == WS_OP_TEXT && !websocket_utf8_valid(p, n))
            return fail(c, 1007, "invalid UTF-8 in a text message");
        push_event(c, op, 0, p, n);
        return;
    case WS_OP_CLOSE:
        return on_client_close(c, p, n);
    case WS_OP_PING:
        /* Answered at once, ahead of paced data: a pong is what keeps the link. */
        if (!c->closing && n <= WS_MAX_CONTROL) {
            count_frame(c, n);
            emit_frame(c, WS_OP_PONG, p, n);
        }
        return;
    case WS_OP_PONG:
        return;
    default:
        return fail(c, 1002, "unknown opcode");
    }
}

/* FLAGS is "0x81" and so on: the client frame's first byte. */
static int parse_flags(const m2_request *m, unsigned *out)
{
    const m2_header *f = m2_header_get(m, "FLAGS", 5);
    if (!f || f->value.n < 3 || f->value.n > 4 || f->value.p[0] != '0' ||
        (f->value.p[1] != 'x' && f->value.p[1] != 'X'))
        return -1;
    unsigned v = 0;
    for (size_t i = 2; i < f->value.n; i++) {
        char ch = f->value.p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
                ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* A frame the other workers can read: the original's headers may have been
 * decoded in place by the parser, so it is rebuilt with what the owner needs. */
static void forward(lubeck *h, const m2_request *m, unsigned flags)
{
    char head[64];
    int hn = snprintf(head, sizeof head, "{\"METHOD\":\"WEBSOCKET\",\"FLAGS\":\"0x%X\"}", flags);
    size_t cap = m->sender.n + m->path.n + m->body.n + (size_t)hn + 64;
    char *f = malloc(cap);
    if (!f) return;
    int pre = snprintf(f, cap, "%.*s %u %.*s %d:%s,%zu:", (int)m->sender.n, m->sender.p, m->conn_id,
                       (int)m->path.n, m->path.p, hn, head, m->body.n);
    memcpy(f + pre, m->body.p, m->body.n);
    f[(size_t)pre + m->body.n] = ',';
    bus_send_websocket(h, m->sender, f, (size_t)pre + m->body.n + 1);
    free(f);
}

int websocket_frame(lubeck *h, const m2_request *m)
{
    if (!slice_eq(m->method, "WEBSOCKET")) return 0;
    unsigned flags;
    if (parse_flags(m, &flags) != 0) return 0;   /* an HTTP request named WEBSOCKET: route it */
    ws_conn *c = find(h, m->sender, m->conn_id);
    if (c) deliver(c, flags, m->body.p, m->body.n);
    else if (h->bus) forward(h, m, flags);        /* its owner is another worker */
    else log_error_limited("websocket %u: a frame for a connection this host does not hold was "
                           "dropped (another host owns it, or it ended); the client should reconnect",
                           m->conn_id);
    return 1;
}

void websocket_bus_frame(lubeck *h, const char *frame, size_t len)
{
    if (!h->websockets || h->websockets->count == 0) return;
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, frame, len);
    m2_request m;
    memset(&m, 0, sizeof m);
    const char *err;
    unsigned flags;
    if (m2_parse(copy, len, &m, &err) == 0 && parse_flags(&m, &flags) == 0) {
        ws_conn *c = find(h, m.sender, m.conn_id);
        if (c) deliver(c, flags, m.body.p, m.body.n);   /* others: not ours, ignored */
    }
    m2_headers_free(&m.headers);
    free(copy);
}

static void close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ws_conn *c = w->data;
    /* The client never answered our close frame: end it anyway. */
    close_now(c);
    push_event(c, WS_OP_CLOSE, c->close_code, c->close_reason, strlen(c->close_reason));
}

/* Sends our close frame (after the frames already waiting) and gives the
 * client WS_CLOSE_WAIT to answer it. */
static void start_close(ws_conn *c, int code, const char *reason, size_t n)
{
    if (c->closing || c->closed) return;
    c->closing = 1;
    c->close_code = code;
    memcpy(c->close_reason, reason, n);
    c->close_reason[n] = '\0';
    char payload[WS_MAX_CONTROL];
    put_close_payload(payload, code, reason, n);
    if (c->out_head) {
        size_t len;
        char *f = build_frame(WS_OP_CLOSE, payload, n + 2, &len);
        if (f) queue_frame(c, f, len, NULL);
        free(f);
    } else {
        emit_frame(c, WS_OP_CLOSE, payload, n + 2);
    }
    ev_timer_set(&c->close_wait, WS_CLOSE_WAIT, 0);
    ev_timer_start(c->h->loop, &c->close_wait);
}

/* ---- the life of a connection ------------------------------------------------- */

static void conn_free(ws_conn *c)
{
    lubeck *h = c->h;
    unregister(h, c);
    ev_timer_stop(h->loop, &c->pace);
    ev_timer_stop(h->loop, &c->close_wait);
    while (c->in_head) {
        ws_msg *m = c->in_head;
        c->in_head = m->next;
        free(m);
    }
    while (c->out_head) {   /* no task is left to resume when this runs */
        ws_pending *p = c->out_head;
        c->out_head = p->next;
        free(p);
    }
    if (c->req) c->req->ws = NULL;
    free(c);
}

void websocket_req_ended(lubeck *h, lbk_req *r)
{
    ws_conn *c = r->ws;
    if (!c) return;
    if (!c->closed) {
        /* The session ended without a close: say so, then close. */
        char payload[2];
        put_close_payload(payload, 1001, "", 0);
        if (!c->closing) emit_frame(c, WS_OP_CLOSE, payload, 2);
        close_now(c);
    }
    c->req = NULL;
    r->ws = NULL;
    conn_free(c);
}

void websocket_stop_all(lubeck *h)
{
    struct lbk_websockets *w = h->websockets;
    if (!w) return;
    for (uint32_t i = 0; i <= w->mask; i++)
        for (ws_conn *c = w->buckets[i]; c; c = c->next)
            start_close(c, 1001, "server shutting down", 20);
}

void websocket_free_all(lubeck *h)
{
    struct lbk_websockets *w = h->websockets;
    if (!w) return;
    for (uint32_t i = 0; i <= w->mask; i++)
        while (w->buckets[i]) {
            ws_conn *c = w->buckets[i];
            c->req = NULL;   /* the requests are being freed too */
            conn_free(c);
        }
    free(w->buckets);
    free(w);
    h->websockets = NULL;
}

/* ---- Lua ------------------------------------------------------------------------ */

/* The subprotocol goes into a header: an HTTP token only. */
static int is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
    }
    return 1;
}

/* The accept key Mongrel2 computed: base64. */
static int is_base64(slice s)
{
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.p[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '='))
            return 0;
    }
    return s.n > 0;
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static ws_conn *check_conn(lua_State *L, int idx)
{
    lbk_req *r = host_req_from_handle(gen_of(L)->host, luaL_checknumber(L, idx));
    return r ? r->ws : NULL;
}

static int push_closed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

static void access_line(lubeck *h, lbk_req *r)
{
    if (h->quiet) return;
    char line[512];
    int n = snprintf(line, sizeof line, "%.*s %.*s %.*s 101 0 %.2fms\n",
                     (int)(r->m2.remote_addr.n > 64 ? 64 : r->m2.remote_addr.n),
                     r->m2.remote_addr.p ? r->m2.remote_addr.p : "-",
                     (int)r->m2.method.n, r->m2.method.p,
                     (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p,
                     (ev_time() - r->started) * 1000.0);
    if (n > 0) log_access(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ws_accept(handle [, protocol]) → true | nil, err: answers the handshake 101
 * and makes the request the connection's session. */
static int l_ws_accept(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lubeck *h = g->host;
    lbk_req *r = host_req_from_handle(h, luaL_checknumber(L, 1));
    size_t plen = 0;
    const char *proto = luaL_optlstring(L, 2, NULL, &plen);
    if (proto && !is_token(proto, plen))
        return luaL_argerror(L, 2, "a subprotocol is a token without CR, LF or NUL");
    if (!r || r->done || r->head_sent || r->ws || r->cancelled) {
        lua_pushnil(L);
        lua_pushliteral(L, "the request can no longer be answered");
        return 2;
    }
    slice key = r->m2.body;
    if (!slice_eq(r->m2.method, "WEBSOCKET_HANDSHAKE") || key.n > 64 || !is_base64(key)) {
        lua_pushnil(L);
        lua_pushliteral(L, "not a WebSocket handshake");
        return 2;
    }
    ws_conn *c = calloc(1, sizeof *c);
    if (!c) return luaL_error(L, "out of memory");
    c->h = h;
    c->req = r;
    c->sender = r->m2.sender;
    c->id = r->m2.conn_id;
    ev_timer_init(&c->pace, pace_cb, 0, 0);
    c->pace.data = c;
    ev_timer_init(&c->close_wait, close_wait_cb, 0, 0);
    c->close_wait.data = c;
    ws_conn *stale = find(h, c->sender, c->id);
    if (stale) unregister(h, stale);   /* a reused conn id: the new one wins */
    if (register_conn(h, c) != 0) {
        free(c);
        return luaL_error(L, "out of memory");
    }
    r->ws = c;
    r->head_sent = 1;
    r->done = 1;               /* no HTTP response may follow */
    r->status = 101;
    host_clear_deadline(h, r); /* a session outlives request_timeout */
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %.*s\r\n",
                     (int)key.n, key.p);
    if (proto && plen < sizeof head - (size_t)n - 40)
        n += snprintf(head + n, sizeof head - (size_t)n, "Sec-WebSocket-Protocol: %.*s\r\n",
                      (int)plen, proto);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    emit(c, head, (size_t)n);
    access_line(h, r);
    lua_pushboolean(L, 1);
    return 1;
}

static void undo_receive(lbk_task *t)
{
    ws_conn *c = t->wait_on;
    if (c && c->reader == t) c->reader = NULL;
}

/* ws_receive(handle) → "text"|"binary", data | "close", code, reason | nil, "closed" */
static int l_ws_receive(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    ws_conn *c = check_conn(L, 1);
    lbk_task *t = sched_current(g->host, L, "websocket receive");
    if (!c) return push_closed(L);
    if (c->in_head) {
        ws_msg *m = c->in_head;
        c->in_head = m->next;
        if (!c->in_head) c->in_tail = NULL;
        c->in_count--;
        c->in_bytes -= m->len;
        int n = push_values(L, m->op, m->code, m->data, m->len);
        free(m);
        return n;
    }
    if (c->closed) return push_closed(L);
    if (c->reader) return luaL_error(L, "websocket receive: another coroutine is receiving");
    c->reader = t;
    return sched_wait(L, t, c, -1, undo_receive, 0);
}

/* ws_send(handle, data, opcode) → true | nil, "closed"; waits for the pacing
 * window when the connection's budget is spent. */
static int l_ws_send(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    ws_conn *c = check_conn(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    int op = (int)luaL_checkinteger(L, 3);
    if (op != WS_OP_TEXT && op != WS_OP_BINARY && op != WS_OP_PING && op != WS_OP_PONG)
        return luaL_argerror(L, 3, "not a data or ping/pong opcode");
    if (op >= WS_OP_CLOSE && n > WS_MAX_CONTROL)
        return luaL_error(L, "a ping or pong carries at most 125 bytes (got %d)", (int)n);
    if (op == WS_OP_TEXT && !websocket_utf8_valid(data, n))
        return luaL_error(L, "send: the text is not UTF-8 (send bytes with \"binary\")");
    if (!c || c->closing || c->closed) return push_closed(L);
    size_t len;
    char *frame;
    if (!c->out_head && fits_window(c, n + WS_MAX_HEADER)) {
        unsigned char hd[WS_MAX_HEADER];
        size_t hn = websocket_frame_header(hd, op, n);
        count_frame(c, hn + n);
        if (hn + n <= 4096) {
            emit_frame(c, op, data, n);
        } else if ((frame = build_frame(op, data, n, &len))) {
            emit(c, frame, len);
            free(frame);
        } else {
            return luaL_error(L, "out of memory");
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    lbk_task *t = sched_current(g->host, L, "websocket send");
    if (c->out_count >= WS_MAX_WAITING || c->out_bytes + n > WS_MAX_WAITING_BYTES) {
        log_warn("websocket %u: %d frames (%zu bytes) wait to be sent: the handler sends faster "
                 "than Mongrel2 may be given them; closing the connection (1008)",
                 c->id, c->out_count, c->out_bytes);
        fail(c, 1008, "sending too fast");
        return push_closed(L);
    }
    if (!(frame = build_frame(op, data, n, &len))) return luaL_error(L, "out of memory");
    ws_pending *p = queue_frame(c, frame, len, t);
    free(frame);
    if (!p) return luaL_error(L, "out of memory");
    return sched_wait(L, t, c, -1, undo_send, 0);
}

/* ws_close(handle [, code [, reason]]) → true | nil, "closed" */
static int l_ws_close(lua_State *L)
{
    ws_conn *c = check_conn(L, 1);
    int code = (int)luaL_optinteger(L, 2, 1000);
    size_t n = 0;
    const char *reason = luaL_optlstring(L, 3, "", &n);
    if (!close_code_ok(code) || code == 1005)
        return luaL_argerror(L, 2, "a close code is 1000-1003, 1007-1011 or 3000-4999");
    if (n > WS_MAX_CONTROL - 2) return luaL_argerror(L, 3, "a close reason has at most 123 bytes");
    if (!websocket_utf8_valid(reason, n)) return luaL_argerror(L, 3, "the reason is not UTF-8");
    if (!c || c->closed) return push_closed(L);
    start_close(c, code, reason, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* ws_release(handle): the session is over. Threads of the request still
 * waiting (a channel listener) are woken with nil, "closed". */
static int l_ws_release(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_req *r = host_req_from_handle(g->host, luaL_checknumber(L, 1));
    if (!r || !r->ws) return 0;
    ws_conn *c = r->ws;
    if (!c->closed) {
        start_close(c, 1001, "", 0);
        close_now(c);
    }
    unregister(g->host, c);
    slice sender = r->m2.sender;
    host_cancel_conn(g->host, sender, r->m2.conn_id);
    return 0;
}

/* ws_frame(data, opcode) → the bytes of one server frame (for app:deliver). */
static int l_ws_frame(lua_State *L)
{
    size_t n, len;
    const char *data = luaL_checklstring(L, 1, &n);
    int op = (int)luaL_optinteger(L, 2, WS_OP_TEXT);
    if (op < 0 || op > 0xf) return luaL_argerror(L, 2, "not an opcode");
    char *f = build_frame(op, data, n, &len);
    if (!f) return luaL_error(L, "out of memory");
    lua_pushlstring(L, f, len);
    free(f);
    return 1;
}

/* ws_count() → open WebSocket connections of this worker */
static int l_ws_count(lua_State *L)
{
    lubeck *h = gen_of(L)->host;
    lua_pushinteger(L, h->websockets ? (lua_Integer)h->websockets->count : 0);
    return 1;
}

static const luaL_Reg ws_functions[] = {
    { "ws_accept", l_ws_accept },
    { "ws_receive", l_ws_receive },
    { "ws_send", l_ws_send },
    { "ws_close", l_ws_close },
    { "ws_release", l_ws_release },
    { "ws_frame", l_ws_frame },
    { "ws_count", l_ws_count },
    { NULL, NULL }
};

void websocket_open(lua_State *L, lbk_gen *g)
{
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, ws_functions, 1);
}
