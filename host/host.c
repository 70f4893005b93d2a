/* One lubeck instance: the ZeroMQ sockets to Mongrel2, the receive path (parse,
 * route, start the handler's coroutine), replies, and the two ways a waiting
 * request ends early: the client went away, or request_timeout passed. */
#include "host.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "reply.h"
#include "scheduler.h"
#include "thread.h"
#include "channel.h"
#include "cosocket.h"
#include "bus.h"
#include "websocket.h"
#include "shared.h"

#define RECV_BATCH 64            /* messages per wake-up before others get a turn */
#define PULL_RCVHWM 64           /* few queued here, so Mongrel2 spreads the load */
#define PUB_LINGER_MS 2000       /* how long replies may still flush at close */
#define HANDLE_INDEX_BITS 24

void host_set_error(lubeck *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
}

/* ---- request slots ------------------------------------------------------ */

double host_req_handle(const lbk_req *r)
{
    return (double)r->serial * (double)(1u << HANDLE_INDEX_BITS) + (double)r->index;
}

lbk_req *host_req_from_handle(lubeck *h, double handle)
{
    if (!(handle >= 0)) return NULL;
    uint64_t v = (uint64_t)handle;
    uint32_t index = (uint32_t)(v & ((1u << HANDLE_INDEX_BITS) - 1));
    uint32_t serial = (uint32_t)(v >> HANDLE_INDEX_BITS);
    if (index >= h->nreqs) return NULL;
    lbk_req *r = h->reqs[index];
    return r->live && r->serial == serial ? r : NULL;
}

static lbk_req *req_alloc(lubeck *h)
{
    lbk_req *r = h->free_reqs;
    if (r) {
        h->free_reqs = r->conn_next;
    } else {
        if (h->nreqs >= (1u << HANDLE_INDEX_BITS)) return NULL;
        lbk_req **grown = realloc(h->reqs, (h->nreqs + 1) * sizeof *grown);
        if (!grown) return NULL;
        h->reqs = grown;
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
        r->index = h->nreqs;
        h->reqs[h->nreqs++] = r;
    }
    m2_headers keep = r->m2.headers;      /* the header array is reused */
    uint32_t index = r->index, serial = (r->serial + 1) & 0x0fffffff;
    memset(r, 0, sizeof *r);
    r->m2.headers = keep;
    r->index = index;
    r->serial = serial;
    r->live = 1;
    zmq_msg_init(&r->msg);
    return r;
}

static void req_free(lubeck *h, lbk_req *r)
{
    if (r->upload_path) {        /* the handler owned the upload: it ends here */
        unlink(r->upload_path);
        free(r->upload_path);
        r->upload_path = NULL;
    }
    zmq_msg_close(&r->msg);
    r->live = 0;
    r->conn_next = h->free_reqs;
    h->free_reqs = r;
}

/* ---- parked requests: by conn id (disconnects) and by deadline ----------- */

static void deadline_rearm(lubeck *h)
{
    ev_timer_stop(h->loop, &h->deadline_timer);
    if (!h->dl_head) return;
    double in = h->dl_head->deadline - ev_now(h->loop);
    ev_timer_set(&h->deadline_timer, in > 0 ? in : 0, 0);
    ev_timer_start(h->loop, &h->deadline_timer);
}

static void conns_grow(lubeck *h)
{
    uint32_t size = h->conns ? (h->conns_mask + 1) * 2 : 1024;
    lbk_req **grown = calloc(size, sizeof *grown);
    if (!grown) return;   /* keep the old table: chains get longer, nothing breaks */
    for (uint32_t i = 0; h->conns && i <= h->conns_mask; i++) {
        for (lbk_req *r = h->conns[i], *next; r; r = next) {
            next = r->conn_next;
            r->conn_next = grown[r->m2.conn_id & (size - 1)];
            grown[r->m2.conn_id & (size - 1)] = r;
        }
    }
    free(h->conns);
    h->conns = grown;
    h->conns_mask = size - 1;
}

/* Called the first time a request's coroutine waits: from then on a disconnect
 * notice or its deadline can end it. Requests answered without waiting never
 * pay for this. */
void host_park(lubeck *h, lbk_req *r)
{
    if (r->parked) return;
    if (!h->conns || h->nparked + 1 > 2 * (h->conns_mask + 1)) conns_grow(h);
    if (!h->conns) return;
    r->parked = 1;
    h->nparked++;
    lbk_req **bucket = &h->conns[r->m2.conn_id & h->conns_mask];
    r->conn_next = *bucket;
    *bucket = r;
    if (r->gen->request_timeout > 0 && !r->ws) {
        /* Requests mostly park in the order they came in, so this walk from
         * the tail is short; one that yielded first may park later. */
        r->deadline = r->started + r->gen->request_timeout;
        lbk_req *after = h->dl_tail;
        while (after && after->deadline > r->deadline) after = after->dl_prev;
        r->dl_prev = after;
        r->dl_next = after ? after->dl_next : h->dl_head;
        if (r->dl_next) r->dl_next->dl_prev = r; else h->dl_tail = r;
        if (after) after->dl_next = r; else h->dl_head = r;
        if (h->dl_head == r) deadline_rearm(h);
    }
}

static void unpark(lubeck *h, lbk_req *r)
{
    if (!r->parked) return;
    r->parked = 0;
    h->nparked--;
    lbk_req **pp = &h->conns[r->m2.conn_id & h->conns_mask];
    while (*pp && *pp != r) pp = &(*pp)->conn_next;
    if (*pp) *pp = r->conn_next;
    r->conn_next = NULL;
    if (r->deadline > 0) {
        int was_head = h->dl_head == r;
        if (r->dl_prev) r->dl_prev->dl_next = r->dl_next; else h->dl_head = r->dl_next;
        if (r->dl_next) r->dl_next->dl_prev = r->dl_prev; else h->dl_tail = r->dl_prev;
        r->dl_prev = r->dl_next = NULL;
        if (was_head) deadline_rearm(h);
    }
}

void host_clear_deadline(lubeck *h, lbk_req *r)
{
    if (!r->parked) return;
    unpark(h, r);
    host_park(h, r);   /* back in the conn map, without a deadline since r->ws is set */
}

static void req_finish(lubeck *h, lbk_req *r)
{
    if (r->ws) websocket_req_ended(h, r);
    cosocket_req_ended(r);
    unpark(h, r);
    h->inflight--;
    req_free(h, r);
}

/* Wakes every coroutine of a parked request with nil, reason; from then on
 * nothing it writes reaches the client. The slot may be freed by the time this
 * returns. */
static void cancel_req(lubeck *h, lbk_req *r, const char *reason)
{
    double handle = host_req_handle(r);
    unsigned round = ++h->cancel_round;
    r->cancelled = reason;
    r->done = 1;
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
    if (!h->conns) return;
    /* Collect first: cancelling runs Lua, which may finish and unlink requests. */
    double handles[64];
    int n = 0;
    for (lbk_req *r = h->conns[conn_id & h->conns_mask]; r && n < 64; r = r->conn_next)
        if (r->m2.conn_id == conn_id && r->m2.sender.n == sender.n &&
            memcmp(r->m2.sender.p, sender.p, sender.n) == 0)
            handles[n++] = host_req_handle(r);
    for (int i = 0; i < n; i++) {
        lbk_req *r = host_req_from_handle(h, handles[i]);
        if (r && !r->cancelled) cancel_req(h, r, "closed");
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
    while (h->dl_head && h->dl_head->deadline <= now) {
        lbk_req *r = h->dl_head;
        double handle = host_req_handle(r);
        /* Take it off the list first, so the loop always advances. */
        h->dl_head = r->dl_next;
        if (h->dl_head) h->dl_head->dl_prev = NULL; else h->dl_tail = NULL;
        r->dl_next = r->dl_prev = NULL;
        r->deadline = 0;
        answer_timeout(h, r);
        r = host_req_from_handle(h, handle);
        if (r && !r->cancelled) cancel_req(h, r, "timeout");
    }
    deadline_rearm(h);
}

/* ---- replies ---------------------------------------------------------------- */

static void send_msg(lubeck *h, zmq_msg_t *m)
{
    if (h->send_fn) {
        h->send_fn(h, zmq_msg_data(m), zmq_msg_size(m), h->send_ud);
        zmq_msg_close(m);
        return;
    }
    /* PUB with SNDHWM 0 never blocks and never drops (PROTOCOL.md §8). */
    if (zmq_msg_send(m, h->pub, 0) < 0) {
        log_error_limited("sending a reply: %s", zmq_strerror(errno));
        zmq_msg_close(m);
    }
}

void host_send_ids(lubeck *h, slice sender, const uint32_t *ids, int n, slice body)
{
    size_t pre = m2_reply_prefix_size(sender, ids, n);
    zmq_msg_t m;
    if (pre == 0 || zmq_msg_init_size(&m, pre + body.n) != 0) return;
    char *o = zmq_msg_data(&m);
    o += m2_reply_prefix(o, sender, ids, n);
    if (body.n) memcpy(o, body.p, body.n);
    send_msg(h, &m);
}

/* One frame to the request's connection: prefix, then up to three parts. */
static int send_frame(lubeck *h, lbk_req *r, slice a, slice b, slice c)
{
    uint32_t id = r->m2.conn_id;
    size_t pre = m2_reply_prefix_size(r->m2.sender, &id, 1);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, pre + a.n + b.n + c.n) != 0) return -1;
    char *o = zmq_msg_data(&m);
    o += m2_reply_prefix(o, r->m2.sender, &id, 1);
    if (a.n) { memcpy(o, a.p, a.n); o += a.n; }
    if (b.n) { memcpy(o, b.p, b.n); o += b.n; }
    if (c.n) memcpy(o, c.p, c.n);
    send_msg(h, &m);
    return 0;
}

void host_close_conn(lubeck *h, lbk_req *r)
{
    send_frame(h, r, SLICE_LIT(""), SLICE_LIT(""), SLICE_LIT(""));   /* empty body = close */
    r->keep_alive = 0;
}

static char *put_slice(char *o, const char *end, slice s)
{
    size_t n = s.n < (size_t)(end - o) ? s.n : (size_t)(end - o);
    memcpy(o, s.p, n);
    return o + n;
}

static char *put_uint(char *o, unsigned long long v)
{
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *o++ = digits[--n];
    return o;
}

/* "127.0.0.1 GET /path 200 123 0.42ms": written by hand, since printf's float
 * formatting alone cost more than parsing the request. */
static void access_log(lubeck *h, lbk_req *r)
{
    if (h->quiet) return;
    char line[512];
    char *o = line, *end = line + 360;   /* room left for the numbers */
    o = put_slice(o, end, r->m2.remote_addr.p ? r->m2.remote_addr : SLICE_LIT("-"));
    *o++ = ' ';
    o = put_slice(o, end, r->m2.method);
    *o++ = ' ';
    o = put_slice(o, end, r->m2.path);
    *o++ = ' ';
    o = put_uint(o, (unsigned)r->status);
    *o++ = ' ';
    o = put_uint(o, r->body_bytes);
    *o++ = ' ';
    double ms = (ev_time() - r->started) * 1000.0;
    unsigned long long hundredths = ms > 0 ? (unsigned long long)(ms * 100.0 + 0.5) : 0;
    o = put_uint(o, hundredths / 100);
    *o++ = '.';
    *o++ = (char)('0' + hundredths / 10 % 10);
    *o++ = (char)('0' + hundredths % 10);
    memcpy(o, "ms\n", 3);
    log_access(line, (size_t)(o + 3 - line));
}

static void response_done(lubeck *h, lbk_req *r)
{
    r->done = 1;
    if (!r->keep_alive) host_close_conn(h, r);
    access_log(h, r);
}

void host_reply_defaults(lubeck *h, lbk_req *r, reply_spec *spec)
{
    spec->http10 = slice_eq(r->m2.version, "HTTP/1.0");
    spec->now = ev_now(h->loop);
    if (!r->keep_alive) spec->conn = REPLY_CONN_CLOSE;
    else if (spec->http10) spec->conn = REPLY_CONN_KEEP_ALIVE;
}

int host_respond(lubeck *h, lbk_req *r, reply_spec *spec, slice body)
{
    if (r->done || r->head_sent) return -1;
    if (!reply_status_has_body(spec->status)) body = SLICE_LIT("");
    spec->content_length = body.n;
    size_t head_len = reply_head_size(spec);
    char stack[2048];
    char *head = head_len <= sizeof stack ? stack : malloc(head_len);
    if (!head) return -1;
    reply_write_head(head, spec);
    if (r->is_head) body = SLICE_LIT("");
    int rc = send_frame(h, r, slice_make(head, head_len), body, SLICE_LIT(""));
    if (head != stack) free(head);
    r->head_sent = 1;
    r->status = spec->status;
    r->body_bytes = spec->content_length;
    response_done(h, r);
    return rc;
}

/* A streamed response is chunked for HTTP/1.1. HTTP/1.0 knows no chunks: the
 * body goes out as it is and the close ends it. HEAD gets the head GET would. */
int host_stream_start(lubeck *h, lbk_req *r, reply_spec *spec)
{
    if (r->done || r->head_sent) return -1;
    int has_body = reply_status_has_body(spec->status);
    if (spec->http10 && has_body) {
        r->keep_alive = 0;
        spec->conn = REPLY_CONN_CLOSE;
        spec->until_close = 1;
        r->stream_raw = 1;
    } else {
        spec->chunked = has_body;
    }
    size_t head_len = reply_head_size(spec);
    char *head = malloc(head_len);
    if (!head) return -1;
    reply_write_head(head, spec);
    int rc = send_frame(h, r, slice_make(head, head_len), SLICE_LIT(""), SLICE_LIT(""));
    free(head);
    r->head_sent = 1;
    r->streaming = has_body && !r->is_head;
    r->status = spec->status;
    return rc;
}

int host_stream_write(lubeck *h, lbk_req *r, slice data)
{
    if (r->done || !r->head_sent) return -1;
    if (!r->streaming || data.n == 0) return 0;   /* HEAD: nothing goes out */
    r->body_bytes += data.n;
    if (r->stream_raw) return send_frame(h, r, data, SLICE_LIT(""), SLICE_LIT(""));
    char size_line[24];
    int n = snprintf(size_line, sizeof size_line, "%zx\r\n", data.n);
    return send_frame(h, r, slice_make(size_line, (size_t)n), data, SLICE_LIT("\r\n"));
}

int host_stream_end(lubeck *h, lbk_req *r)
{
    if (r->done || !r->head_sent) return -1;
    int rc = 0;
    if (r->streaming && !r->stream_raw)
        rc = send_frame(h, r, SLICE_LIT("0\r\n\r\n"), SLICE_LIT(""), SLICE_LIT(""));
    response_done(h, r);
    return rc;
}

/* ---- the end of a handler's coroutine ------------------------------------ */

void host_req_add_task(lbk_req *r, lbk_task *t)
{
    t->req = r;
    t->req_prev = NULL;
    t->req_next = r->tasks;
    if (r->tasks) r->tasks->req_prev = t;
    r->tasks = t;
    r->ntasks++;
}

void host_task_ended(lubeck *h, lbk_task *t, int failed)
{
    if (t->thread) thread_ended(t, failed);
    else if (failed) log_error("uncaught error in a request's coroutine: %s", lua_tostring(t->co, -1));
    lbk_req *r = t->req;
    t->req = NULL;
    if (!r) return;
    if (t->req_prev) t->req_prev->req_next = t->req_next; else r->tasks = t->req_next;
    if (t->req_next) t->req_next->req_prev = t->req_prev;
    r->ntasks--;
    if (r->task == t) {
        r->task = NULL;
        if (!r->done) {
            /* The pipeline always answers; only a failure of the pipeline itself
             * gets here. A started stream cannot be mended: close it. */
            if (r->head_sent) {
                host_close_conn(h, r);
                r->done = 1;
            } else {
                reply_spec spec = { .status = 500 };
                host_reply_defaults(h, r, &spec);
                host_respond(h, r, &spec, SLICE_LIT("Internal Server Error\n"));
            }
        }
    }
    /* Spawned threads may outlive the response; the request ends with the last. */
    if (r->ntasks == 0) req_finish(h, r);
}

/* ---- receiving ------------------------------------------------------------ */

static int wants_keep_alive(const m2_request *m)
{
    const m2_header *c = m2_header_get(m, "connection", 10);
    int http10 = slice_eq(m->version, "HTTP/1.0");
    if (!c) return !http10;
    /* Connection is a comma-separated list of tokens. */
    const char *p = c->value.p, *end = p + c->value.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t') p++;
        size_t n = (size_t)(p - tok);
        if (n == 5 && strncasecmp(tok, "close", 5) == 0) return 0;
        if (n == 10 && strncasecmp(tok, "keep-alive", 10) == 0) return 1;
    }
    return !http10;
}

static void dispatch(lubeck *h, lbk_req *r)
{
    lbk_gen *g = h->gen;
    m2_request *m = &r->m2;
    r->gen = g;
    r->started = ev_now(h->loop);
    r->method_bit = router_method_bit(m->method.p, m->method.n);
    r->is_head = r->method_bit == ROUTER_HEAD;
    r->keep_alive = wants_keep_alive(m);
    h->inflight++;

    lbk_task *t = sched_task_acquire(g);
    if (!t) {
        log_error_limited("out of memory starting a request");
        r->task = NULL;
        reply_spec spec = { .status = 503 };
        host_reply_defaults(h, r, &spec);
        host_respond(h, r, &spec, SLICE_LIT("Service Unavailable\n"));
        req_finish(h, r);
        return;
    }
    r->task = t;
    host_req_add_task(r, t);

    router_match match;
    router_result res = router_match_path(g->router, m->path.p, m->path.n, r->method_bit, &match);
    lua_State *co = t->co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, g->entry_ref);
    lua_pushnumber(co, host_req_handle(r));
    lua_pushlstring(co, m->method.p, m->method.n);
    lua_pushlstring(co, m->path.p, m->path.n);
    int nargs = 4;
    if (res == ROUTER_FOUND) {
        lua_pushinteger(co, match.route + 1);
        for (int i = 0; i < match.ncaptures; i++) {
            if (match.captures[i].p) lua_pushlstring(co, match.captures[i].p, match.captures[i].n);
            else lua_pushnil(co);
        }
        nargs += match.ncaptures;
    } else if (res == ROUTER_NOT_FOUND) {
        lua_pushinteger(co, 0);
    } else {
        lua_pushinteger(co, -1);
        lua_pushinteger(co, (lua_Integer)match.allowed);
        nargs++;
    }
    sched_start(t, nargs);
}

/* An async upload announces itself before the body is on disk; only the
 * second message, with upload-done, is a request to answer. A client can send
 * the header itself (Mongrel2 overwrites it only on a real upload), so the
 * notice is recognised by its shape too: a body is announced but none came. */
static int is_upload_start(const m2_request *m)
{
    if (!m->upload_start.p || m->upload_done.p || m->body.n != 0) return 0;
    const m2_header *len = m2_header_get(m, "content-length", 14);
    if (len && !(len->value.n == 1 && len->value.p[0] == '0')) return 1;
    return m2_header_get(m, "transfer-encoding", 17) != NULL;
}

int host_set_upload_dir(lubeck *h, const char *dir)
{
    char real[PATH_MAX];
    if (!dir || !realpath(dir, real)) return -1;
    char *copy = strdup(real);
    if (!copy) return -1;
    free(h->upload_dir);
    h->upload_dir = copy;
    return 0;
}

/* A message with x-mongrel2-upload-done names a file for the handler. A client
 * can send that header itself, so the file is taken only when start and done
 * agree, it is a regular file inside the upload folder, and its size is the
 * request's Content-Length. Returns NULL (r->upload_path set) or why not. */
static const char *upload_accept(lubeck *h, lbk_req *r)
{
    slice start = r->m2.upload_start, done = r->m2.upload_done;
    if (!h->upload_dir) return "no upload folder is configured (lubeck run --upload-dir DIR)";
    if (!start.p || start.n != done.n || memcmp(start.p, done.p, done.n) != 0)
        return "x-mongrel2-upload-start and x-mongrel2-upload-done differ";
    char path[PATH_MAX], real[PATH_MAX];
    if (done.n == 0 || done.n >= sizeof path || memchr(done.p, '\0', done.n)) return "bad upload path";
    memcpy(path, done.p, done.n);
    path[done.n] = '\0';
    size_t dl = strlen(h->upload_dir);
    struct stat st;
    if (!realpath(path, real) || strncmp(real, h->upload_dir, dl) != 0 || real[dl] != '/')
        return "the upload path is not inside the upload folder";
    if (lstat(real, &st) != 0 || !S_ISREG(st.st_mode)) return "the upload is not a regular file";
    const m2_header *cl = m2_header_get(&r->m2, "content-length", 14);
    if (cl) {
        char num[32];
        size_t n = cl->value.n < sizeof num - 1 ? cl->value.n : sizeof num - 1;
        memcpy(num, cl->value.p, n);
        num[n] = '\0';
        char *end;
        unsigned long long want = strtoull(num, &end, 10);
        if (end == num || *end || (unsigned long long)st.st_size != want)
            return "the upload's size is not its Content-Length";
    }
    r->upload_path = strdup(real);
    return r->upload_path ? NULL : "out of memory";
}

/* Answers a request in C, before any Lua runs: refusals the host decides on its
 * own (limits, bad uploads) and serve's probe. The connection is closed after
 * a refusal, since the client may still be sending. */
static void answer_directly(lubeck *h, lbk_req *r, int status, slice body, const slice *headers,
                           int nheaders)
{
    r->started = ev_now(h->loop);
    if (status >= 400) r->keep_alive = 0;
    reply_spec spec = { .status = status, .headers = headers, .nheaders = nheaders };
    host_reply_defaults(h, r, &spec);
    host_respond(h, r, &spec, body);
    req_free(h, r);
}

static void refuse_upload(lubeck *h, lbk_req *r, const char *why)
{
    log_warn("%.*s %.*s: upload refused: %s", (int)r->m2.method.n, r->m2.method.p,
             (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p, why);
    answer_directly(h, r, 400, SLICE_LIT("Bad Request: upload refused\n"), NULL, 0);
}

/* `lubeck serve` asks through Mongrel2 whether the whole path answers before it
 * prints the URL; the app never sees that request. */
static int answer_probe(lubeck *h, lbk_req *r)
{
    const m2_header *probe = m2_header_get(&r->m2, "x-lubeck-probe", 14);
    if (!probe || !slice_eq(probe->value, h->probe_token)) return 0;
    int quiet = h->quiet;
    h->quiet = 1;
    answer_directly(h, r, 204, SLICE_LIT(""), NULL, 0);
    h->quiet = quiet;
    return 1;
}

/* The host's own limits (all configurable, see lubeck_limits): a request past
 * them is answered here. Returns 1 when it was. */
static int over_limits(lubeck *h, lbk_req *r)
{
    if (h->max_inflight > 0 && h->inflight >= h->max_inflight) {
        log_error_limited("%d requests in flight (--max-inflight): answering 503", h->inflight);
        static const slice retry[] = { SLICE_LIT("Retry-After"), SLICE_LIT("1") };
        answer_directly(h, r, 503, SLICE_LIT("Service Unavailable: too busy, retry shortly\n"), retry, 1);
        return 1;
    }
    if (h->max_headers > 0 && r->m2.headers.n > h->max_headers) {
        log_warn("%.*s %.*s: %d headers (--max-headers %d): answered 431", (int)r->m2.method.n,
                 r->m2.method.p, (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p,
                 r->m2.headers.n, h->max_headers);
        answer_directly(h, r, 431, SLICE_LIT("Request Header Fields Too Large\n"), NULL, 0);
        return 1;
    }
    if (h->max_body > 0 && r->m2.body.n > h->max_body) {
        answer_directly(h, r, 413, SLICE_LIT("Payload Too Large\n"), NULL, 0);
        return 1;
    }
    return 0;
}

static void on_frame(lubeck *h, zmq_msg_t *msg)
{
    lbk_req *r = req_alloc(h);
    if (!r) {
        log_error_limited("out of memory: dropped a request");
        return;
    }
    zmq_msg_move(&r->msg, msg);
    const char *err = NULL;
    if (m2_parse(zmq_msg_data(&r->msg), zmq_msg_size(&r->msg), &r->m2, &err) != 0) {
        log_error_limited("dropped a malformed frame of %zu bytes: %s",
                          zmq_msg_size(&r->msg), err);
        req_free(h, r);
        return;
    }
    switch (r->m2.kind) {
    case M2_DISCONNECT:
        /* Mongrel2 hands notices to any worker: the owner may be another one. */
        bus_send_disconnect(h, r->m2.sender, r->m2.conn_id);
        host_cancel_conn(h, r->m2.sender, r->m2.conn_id);
        req_free(h, r);
        return;
    case M2_CREDITS:
    case M2_NOTICE:
        req_free(h, r);   /* never routed, never answered (PROTOCOL.md §2) */
        return;
    case M2_HTTP:
        break;
    }
    if (websocket_frame(h, &r->m2)) {   /* METHOD WEBSOCKET: to its session, never routed */
        req_free(h, r);
        return;
    }
    if (is_upload_start(&r->m2)) {
        req_free(h, r);
        return;
    }
    if (h->probe_token[0] && answer_probe(h, r)) return;
    if (over_limits(h, r)) return;
    if (r->m2.upload_done.p) {
        const char *why = upload_accept(h, r);
        if (why) return refuse_upload(h, r, why);
    }
    dispatch(h, r);
}

/* ZMQ_FD is edge-triggered: drain until ZMQ_EVENTS says nothing is pending, and
 * look again before the loop blocks (prepare_cb), since any zmq call on the
 * socket may consume the edge. */
static void drain(lubeck *h)
{
    for (int i = 0; i < RECV_BATCH; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, h->pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            if (errno != EAGAIN && errno != EINTR)
                log_error_limited("receiving: %s", zmq_strerror(errno));
            ev_idle_stop(h->loop, &h->drain_idle);
            return;
        }
        on_frame(h, &msg);
        zmq_msg_close(&msg);
        if (!h->pull) return;   /* stopped from inside a handler */
    }
    ev_idle_start(h->loop, &h->drain_idle);   /* more may be pending: next iteration */
}

static int pull_pending(lubeck *h)
{
    int events = 0;
    size_t len = sizeof events;
    return h->pull && zmq_getsockopt(h->pull, ZMQ_EVENTS, &events, &len) == 0 &&
           (events & ZMQ_POLLIN);
}

static void pull_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    drain(w->data);
}

static void drain_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    drain(w->data);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    lubeck *h = w->data;
    if (pull_pending(h)) ev_idle_start(loop, &h->drain_idle);
    log_flush();
}

/* ---- life cycle -------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

lubeck *lubeck_new(struct ev_loop *loop, const lubeck_config *cfg, char *err, size_t errlen)
{
    if (!loop || !cfg || !cfg->app) {
        snprintf(err, errlen, "lubeck_new: a loop and cfg->app are required");
        return NULL;
    }
    lubeck *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->loop = loop;
    h->max_inflight = 10000;
    h->max_headers = 256;
    h->app = strdup(cfg->app);
    h->send_spec = dup_or_null(cfg->send_spec);
    h->recv_spec = dup_or_null(cfg->recv_spec);
    h->reload = cfg->reload;
    h->debug = cfg->debug;
    if (paths_lua_dir(h->lua_dir, sizeof h->lua_dir) != 0) {
        snprintf(err, errlen, "cannot find lubeck's Lua modules (looked in %s; set LUBECK_LUA_DIR)",
                 h->lua_dir);
        lubeck_free(h);
        return NULL;
    }
    /* Alone, a host has its own zone for lubeck.shared; a worker is given its
     * master's (host_use_shared_zone) before it starts. */
    h->shared = shared_zone_new(SHARED_DEFAULT_SLOTS);
    h->own_shared = 1;
    if (!h->shared) {
        snprintf(err, errlen, "cannot map memory for lubeck.shared");
        lubeck_free(h);
        return NULL;
    }
    sched_init(h);
    ev_prepare_init(&h->prepare, prepare_cb);
    h->prepare.data = h;
    ev_idle_init(&h->drain_idle, drain_idle_cb);
    h->drain_idle.data = h;
    ev_timer_init(&h->deadline_timer, deadline_cb, 0, 0);
    h->deadline_timer.data = h;
    return h;
}

int lubeck_register(lubeck *h, const char *name, lua_CFunction fn)
{
    if (!name || !fn || h->started) return -1;
    lbk_native *grown = realloc(h->natives, (size_t)(h->nnatives + 1) * sizeof *grown);
    if (!grown) return -1;
    h->natives = grown;
    h->natives[h->nnatives].name = strdup(name);
    h->natives[h->nnatives].fn = fn;
    h->nnatives++;
    return 0;
}

/* Connects sock to every endpoint of a ';'-separated list. */
static int connect_all(lubeck *h, void *sock, const char *specs, const char *what)
{
    char *copy = strdup(specs), *save = NULL;
    int rc = 0;
    for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        if (zmq_connect(sock, s) != 0) {
            host_set_error(h, "cannot connect %s to %s: %s", what, s, zmq_strerror(errno));
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

static int open_sockets(lubeck *h)
{
    h->zctx = zmq_ctx_new();
    if (!h->zctx) {
        host_set_error(h, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -1;
    }
    h->pull = zmq_socket(h->zctx, ZMQ_PULL);
    h->pub = zmq_socket(h->zctx, ZMQ_PUB);
    int hwm = PULL_RCVHWM, zero = 0, linger = PUB_LINGER_MS;
    zmq_setsockopt(h->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(h->pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(h->pub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(h->pub, ZMQ_LINGER, &linger, sizeof linger);
    if (connect_all(h, h->pull, h->send_spec, "the request socket") != 0) return -1;
    if (connect_all(h, h->pub, h->recv_spec, "the reply socket") != 0) return -1;
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(h->pull, ZMQ_FD, &fd, &len) != 0) {
        host_set_error(h, "ZMQ_FD: %s", zmq_strerror(errno));
        return -1;
    }
    ev_io_init(&h->pull_io, pull_cb, fd, EV_READ);
    h->pull_io.data = h;
    return 0;
}

void host_use_shared_zone(lubeck *h, struct shared_zone *z)
{
    if (h->own_shared) shared_zone_free(h->shared);
    h->shared = z;
    h->own_shared = 0;
}

int lubeck_start(lubeck *h)
{
    if (h->started) return 0;
    if (!h->send_spec || !h->recv_spec) {
        host_set_error(h, "send_spec and recv_spec are required");
        return -1;
    }
    char err[4096];
    h->gen = gen_load(h, h->app, err, sizeof err);
    if (!h->gen) {
        host_set_error(h, "%s", err);
        return -1;
    }
    if (open_sockets(h) != 0) return -1;
    ev_io_start(h->loop, &h->pull_io);
    ev_prepare_start(h->loop, &h->prepare);
    ev_idle_start(h->loop, &h->drain_idle);   /* messages may already be queued */
    h->started = 1;
    return 0;
}

int host_reload(lubeck *h)
{
    char err[4096];
    lbk_gen *fresh = gen_load(h, h->app, err, sizeof err);
    if (!fresh) {
        log_error("reload failed, still serving the previous version: %s", err);
        host_set_error(h, "%s", err);
        return -1;
    }
    lbk_gen *old = h->gen;
    h->gen = fresh;
    if (old) gen_release(old);
    log_info("reloaded %s", h->app);
    return 0;
}

int host_start_local(lubeck *h, lbk_send_fn send_fn, void *ud)
{
    char err[4096];
    h->gen = gen_load(h, h->app, err, sizeof err);
    if (!h->gen) {
        host_set_error(h, "%s", err);
        return -1;
    }
    h->send_fn = send_fn;
    h->send_ud = ud;
    h->started = 1;
    return 0;
}

void host_inject(lubeck *h, const void *frame, size_t len)
{
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, len) != 0) return;
    memcpy(zmq_msg_data(&msg), frame, len);
    on_frame(h, &msg);
    zmq_msg_close(&msg);
}

static void close_pull(lubeck *h)
{
    if (!h->pull) return;
    ev_io_stop(h->loop, &h->pull_io);
    ev_idle_stop(h->loop, &h->drain_idle);
    zmq_close(h->pull);
    h->pull = NULL;
}

void lubeck_stop(lubeck *h)
{
    if (!h->started || h->stopping) return;
    h->stopping = 1;
    /* Mongrel2 keeps what it has not pushed yet for other handlers (or for our
     * restart); what already sits in our queue is answered first. */
    char *copy = strdup(h->send_spec), *save = NULL;
    for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save))
        zmq_disconnect(h->pull, s);
    free(copy);
    while (h->pull && pull_pending(h)) drain(h);
    close_pull(h);
    websocket_stop_all(h);   /* close frames (1001): the sessions end within seconds */
    ev_prepare_stop(h->loop, &h->prepare);
    log_flush();
}

int lubeck_inflight(const lubeck *h)
{
    return h->inflight;
}

const char *lubeck_error(const lubeck *h)
{
    return h->err;
}

/* lubeck_free on a request still running: stops every watcher its coroutines
 * started (socket I/O, wait timers) and undoes their waits (channel waiter
 * lists, thread joins), while every generation is still open. */
static void abandon_waits(lubeck *h, lbk_req *r)
{
    cosocket_req_ended(r);
    for (lbk_task *t = r->tasks; t; t = t->req_next) {
        ev_timer_stop(h->loop, &t->timer);
        if (t->wait == WAIT_OTHER && t->undo_fn) t->undo_fn(t);
        t->wait = WAIT_NONE;
        t->undo_fn = NULL;
        t->wait_on = NULL;
    }
}

/* Then frees its tasks; a retired generation closes with its last one (its
 * coroutines go with its Lua state). */
static void abandon_tasks(lubeck *h, lbk_req *r)
{
    while (r->tasks) {
        lbk_task *t = r->tasks;
        r->tasks = t->req_next;
        lbk_gen *g = t->gen;
        g->tasks--;
        h->ntasks--;
        free(t);
        if (g->retired && g->tasks == 0) gen_release(g);
    }
    r->ntasks = 0;
    r->task = NULL;
    if (r->upload_path) {
        unlink(r->upload_path);
        free(r->upload_path);
        r->upload_path = NULL;
    }
}

/* Leaves nothing behind on the caller's loop: every watcher the host started
 * is stopped, requests still running are abandoned (their clients get no
 * answer) and all memory is freed. */
void lubeck_free(lubeck *h)
{
    if (!h) return;
    close_pull(h);
    ev_prepare_stop(h->loop, &h->prepare);
    ev_timer_stop(h->loop, &h->deadline_timer);
    ev_idle_stop(h->loop, &h->ready_idle);
    h->ready_head = h->ready_tail = NULL;
    for (uint32_t i = 0; i < h->nreqs; i++)
        if (h->reqs[i]->live) abandon_waits(h, h->reqs[i]);
    for (uint32_t i = 0; i < h->nreqs; i++)
        if (h->reqs[i]->live) abandon_tasks(h, h->reqs[i]);
    if (h->gen) {
        /* Every task belongs to a request, so none is left; should one be, its
         * struct is lost but its coroutine still goes with the state. */
        h->gen->tasks = 0;
        gen_release(h->gen);
        h->gen = NULL;
    }
    for (uint32_t i = 0; i < h->nreqs; i++) {
        if (h->reqs[i]->live) zmq_msg_close(&h->reqs[i]->msg);
        m2_headers_free(&h->reqs[i]->m2.headers);
        free(h->reqs[i]);
    }
    free(h->reqs);
    free(h->conns);
    websocket_free_all(h);
    channel_free_all(h);
    cosocket_free_all(h);
    if (h->own_shared) shared_zone_free(h->shared);
    bus_close(h);
    if (h->pub) zmq_close(h->pub);
    if (h->zctx) zmq_ctx_term(h->zctx);
    for (int i = 0; i < h->nnatives; i++) free(h->natives[i].name);
    free(h->natives);
    free(h->app);
    free(h->send_spec);
    free(h->recv_spec);
    free(h->upload_dir);
    free(h);
}
