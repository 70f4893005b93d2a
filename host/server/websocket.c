/* WebSockets through Mongrel2 (docs/protocol.md, WebSockets).
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
 * Back-pressure (docs/flow-control.md). Mongrel2 queues at most 16 messages per
 * connection and drops the client when a 17th arrives; it reads its socket in
 * a loop without writing in between, so a burst overflows even a client that
 * reads fast, and under CPU contention no time-based budget is safe. So
 * lubeck's Mongrel2 runs with download.flow_control=1: every send goes through
 * flow.c, which keeps the bytes Mongrel2 has not yet reported written under
 * its window. A send here goes once the connection's backlog is empty; until
 * then its coroutine waits (frames keep their order). A slow reader slows only
 * its own connection; one that reads nothing for the send timeout is closed by
 * flow.c and the session ends (on_close 1006). Against a Mongrel2 without flow
 * control (requests carry no DOWNLOAD_CREDITS), sends fall back to a budget of
 * WS_PACE_FRAMES frames and WS_PACE_BYTES bytes per WS_PACE_WINDOW: half of
 * Mongrel2's queue per 2 ms, which holds only while Mongrel2 keeps up. When
 * more than WS_MAX_WAITING frames (or WS_MAX_WAITING_BYTES) wait on one
 * connection, the handler produces faster than the connection takes them: it
 * is closed with 1008 and the reason logged. */
#include "websocket_conn.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler.h"

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

ws_conn *ws_find(lubeck *h, slice sender, uint32_t id)
{
    struct lbk_websockets *w = h->websockets;
    if (!w) return NULL;
    for (ws_conn *c = w->buckets[id & w->mask]; c; c = c->next)
        if (c->id == id && c->sender.n == sender.n && memcmp(c->sender.p, sender.p, sender.n) == 0)
            return c;
    return NULL;
}

void ws_unregister(lubeck *h, ws_conn *c)
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

int ws_register(lubeck *h, ws_conn *c)
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
char *ws_build_frame(int op, const char *p, size_t n, size_t *len)
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

void ws_emit(ws_conn *c, const char *frame, size_t len)
{
    host_send_ids(c->h, c->sender, &c->id, 1, slice_make(frame, len));
}

/* Control frames and small ones go out from the stack. */
void ws_emit_frame(ws_conn *c, int op, const char *p, size_t n)
{
    char stack[WS_MAX_HEADER + 256];
    unsigned char hd[WS_MAX_HEADER];
    size_t hn = websocket_frame_header(hd, op, n);
    char *f = hn + n <= sizeof stack ? stack : malloc(hn + n);
    if (!f) return;
    memcpy(f, hd, hn);
    if (n) memcpy(f + hn, p, n);
    ws_emit(c, f, hn + n);
    if (f != stack) free(f);
}

/* May a frame of len bytes go now? With flow control: when nothing waits in
 * the connection's backlog (flow.c sends what fits the credit window and keeps
 * the rest). Without: when it fits this time window (a new one opens when it
 * is over). */
int ws_fits_window(ws_conn *c, size_t len)
{
    if (flow_window(c->h)) return flow_backlog(c->h, c->sender, c->id) == 0;
    double now = ev_now(c->h->loop);
    if (now - c->win_start >= WS_PACE_WINDOW) {
        c->win_start = now;
        c->win_frames = 0;
        c->win_bytes = 0;
    }
    return c->win_frames == 0 ||
           (c->win_frames < WS_PACE_FRAMES && c->win_bytes + len <= WS_PACE_BYTES);
}

void ws_count_frame(ws_conn *c, size_t len)
{
    c->win_frames++;
    c->win_bytes += len;
}

/* Resumes the task of a pending frame with value (true: sent; nil, "closed"). */
static void resume_sender(lbk_task *t, int sent)
{
    if (t) sched_wake_result(t, sent, "closed");
}

static void stop_waiting_for_room(ws_conn *c)
{
    ev_timer_stop(c->h->loop, &c->pace);
    flow_unwatch(c->h, &c->room);
}

static void drop_pending(ws_conn *c)
{
    while (c->out_head) {
        ws_pending *p = c->out_head;
        c->out_head = p->next;
        resume_sender(p->task, 0);
        free(p);
    }
    c->out_tail = NULL;
    c->out_count = 0;
    c->out_bytes = 0;
    stop_waiting_for_room(c);
}

static void push_event(ws_conn *c, int op, int code, const char *p, size_t n);

/* The connection ends here: the empty frame makes Mongrel2 flush and close. */
void ws_close_now(ws_conn *c)
{
    if (c->closed) return;
    c->closed = 1;
    c->closing = 1;
    ev_timer_stop(c->h->loop, &c->close_wait);
    drop_pending(c);
    host_send_ids(c->h, c->sender, &c->id, 1, SLICE_LIT(""));
    if (c->req) c->req->conn_closed = 1;
}

static void put_close_payload(char *out, int code, const char *reason, size_t n)
{
    out[0] = (char)(code >> 8);
    out[1] = (char)code;
    memcpy(out + 2, reason, n);
}

/* We end the connection because of the client (or of the handler's pace):
 * close frame with code, the empty frame, and the session hears the same. */
void ws_fail(ws_conn *c, int code, const char *reason)
{
    if (c->closed) return;
    size_t n = strlen(reason);
    char payload[WS_MAX_CONTROL];
    put_close_payload(payload, code, reason, n);
    drop_pending(c);
    if (!c->closing) ws_emit_frame(c, WS_OP_CLOSE, payload, n + 2);
    ws_close_now(c);
    push_event(c, WS_OP_CLOSE, code, reason, n);
}

static void room_cb(void *ud, int open);

/* The frames at the head go once there is room: the next time window, or
 * (with flow control) the moment the connection's backlog is empty. */
static void wait_for_room(ws_conn *c)
{
    if (flow_window(c->h)) {
        c->room.fn = room_cb;
        c->room.ud = c;
        if (flow_watch(c->h, c->sender, c->id, &c->room)) return;
    }
    if (ev_is_active(&c->pace)) return;
    double left = WS_PACE_WINDOW - (ev_now(c->h->loop) - c->win_start);
    /* With flow control there is room already: go on the next loop turn. */
    ev_timer_set(&c->pace, flow_window(c->h) || left < 0 ? 0 : left, 0);
    ev_timer_start(c->h->loop, &c->pace);
}

static void send_waiting(ws_conn *c)
{
    while (c->out_head && ws_fits_window(c, c->out_head->len)) {
        ws_pending *p = c->out_head;
        c->out_head = p->next;
        if (!c->out_head) c->out_tail = NULL;
        c->out_count--;
        c->out_bytes -= p->len;
        ws_count_frame(c, p->len);
        ws_emit(c, p->frame, p->len);
        resume_sender(p->task, 1);
        free(p);
    }
    if (c->out_head) wait_for_room(c);
}

void ws_pace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    send_waiting(w->data);
}

/* flow.c: the backlog emptied (open), or the connection ended: Mongrel2 said
 * it is gone, or its client read nothing for the send timeout (then the
 * session is cancelled right after, as for a disconnect). */
static void room_cb(void *ud, int open)
{
    ws_conn *c = ud;
    if (open) {
        send_waiting(c);
        return;
    }
    c->closing = 1;
    c->closed = 1;
    drop_pending(c);
}

ws_pending *ws_queue_frame(ws_conn *c, char *frame, size_t len, lbk_task *t)
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
    if (!ev_is_active(&c->pace) && !c->room.conn) wait_for_room(c);
    return p;
}

/* A sender that waited for the window was cancelled (its client went away, or
 * its request timed out): its frame stays unsent. */
void ws_undo_send(lbk_task *t)
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
int ws_push_values(lua_State *L, int op, int code, const char *p, size_t n)
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
        sched_wake(t, ws_push_values(t->co, op, code, p, n));
        return;
    }
    if (op != WS_OP_CLOSE && (c->in_count >= WS_INBOX_MAX || c->in_bytes + n > WS_INBOX_MAX_BYTES)) {
        log_warn("websocket %u: %d messages (%zu bytes) wait for a handler that does not take "
                 "them: closing the connection (1008)", c->id, c->in_count, c->in_bytes);
        ws_fail(c, 1008, "too many messages waiting");
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

int ws_close_code_ok(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

static void on_client_close(ws_conn *c, const char *p, size_t n)
{
    int code = 1005;   /* "no status received" */
    const char *reason = "";
    size_t rn = 0;
    if (n == 1) return ws_fail(c, 1002, "bad close frame");
    if (n >= 2) {
        code = ((unsigned char)p[0] << 8) | (unsigned char)p[1];
        reason = p + 2;
        rn = n - 2;
        if (!ws_close_code_ok(code)) return ws_fail(c, 1002, "bad close code");
        if (!websocket_utf8_valid(reason, rn)) return ws_fail(c, 1007, "invalid UTF-8 in the close reason");
    }
    /* The echo (unless this answers our own close), then the close itself. */
    if (!c->closing) {
        drop_pending(c);
        ws_emit_frame(c, WS_OP_CLOSE, p, n);
    }
    ws_close_now(c);
    push_event(c, WS_OP_CLOSE, code, reason, rn);
}

/* One client message for a connection of ours. */
void ws_deliver(ws_conn *c, unsigned flags, const char *p, size_t n)
{
    if (c->closed) return;
    int op = (int)(flags & 0x0f);
    if (flags & 0x70) return ws_fail(c, 1002, "no extension was negotiated (RSV bits set)");
    switch (op) {
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->closing) return;   /* we said goodbye: only the close answer counts now */
        if (n > WS_MAX_MESSAGE) return ws_fail(c, 1009, "message too big");
        if (op == WS_OP_TEXT && !websocket_utf8_valid(p, n))
            return ws_fail(c, 1007, "invalid UTF-8 in a text message");
        push_event(c, op, 0, p, n);
        return;
    case WS_OP_CLOSE:
        return on_client_close(c, p, n);
    case WS_OP_PING:
        /* Answered at once, ahead of paced data: a pong is what keeps the link. */
        if (!c->closing && n <= WS_MAX_CONTROL) {
            ws_count_frame(c, n);
            ws_emit_frame(c, WS_OP_PONG, p, n);
        }
        return;
    case WS_OP_PONG:
        return;
    default:
        return ws_fail(c, 1002, "unknown opcode");
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

int websocket_frame(lubeck *h, const m2_request *m)
{
    if (!slice_eq(m->method, "WEBSOCKET")) return 0;
    unsigned flags;
    if (parse_flags(m, &flags) != 0) return 0;   /* an HTTP request named WEBSOCKET: route it */
    ws_conn *c = ws_find(h, m->sender, m->conn_id);
    if (c) ws_deliver(c, flags, m->body.p, m->body.n);
    else log_error_limited("websocket %u: a frame for a connection this host does not hold was "
                           "dropped (it ended, or another host owns it: use a relay); the client "
                           "should reconnect",
                           m->conn_id);
    return 1;
}

void ws_close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    ws_conn *c = w->data;
    /* The client never answered our close frame: end it anyway. */
    ws_close_now(c);
    push_event(c, WS_OP_CLOSE, c->close_code, c->close_reason, strlen(c->close_reason));
}

/* Sends our close frame (after the frames already waiting) and gives the
 * client WS_CLOSE_WAIT to answer it. */
void ws_start_close(ws_conn *c, int code, const char *reason, size_t n)
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
        char *f = ws_build_frame(WS_OP_CLOSE, payload, n + 2, &len);
        if (f) ws_queue_frame(c, f, len, NULL);
        free(f);
    } else {
        ws_emit_frame(c, WS_OP_CLOSE, payload, n + 2);
    }
    ev_timer_set(&c->close_wait, WS_CLOSE_WAIT, 0);
    ev_timer_start(c->h->loop, &c->close_wait);
}

/* ---- the life of a connection ------------------------------------------------- */

static void conn_free(ws_conn *c)
{
    lubeck *h = c->h;
    ws_unregister(h, c);
    stop_waiting_for_room(c);
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
        if (!c->closing) ws_emit_frame(c, WS_OP_CLOSE, payload, 2);
        ws_close_now(c);
    }
    c->req = NULL;
    r->ws = NULL;
    conn_free(c);
}

void websocket_forget(lubeck *h, lbk_req *r)
{
    ws_conn *c = r->ws;
    if (!c) return;
    c->closing = 1;
    c->closed = 1;
    ev_timer_stop(h->loop, &c->close_wait);
    drop_pending(c);
    ws_unregister(h, c);
}

void websocket_stop_all(lubeck *h)
{
    struct lbk_websockets *w = h->websockets;
    if (!w) return;
    for (uint32_t i = 0; i <= w->mask; i++)
        for (ws_conn *c = w->buckets[i]; c; c = c->next)
            ws_start_close(c, 1001, "server shutting down", 20);
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
