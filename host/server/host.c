/* One lubeck instance: the ZeroMQ sockets to Mongrel2, request slots, the
 * receive path (parse, check limits, route, start the handler's coroutine) and
 * the life cycle of the public API. Replies are in respond.c, parked requests
 * (disconnects, deadlines) in park.c, uploads in upload.c. */
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

#include <sodium.h>

#include "log.h"
#include "reply.h"
#include "scheduler.h"
#include "thread.h"
#include "channel.h"
#include "cosocket.h"
#include "pg.h"
#include "bus.h"
#include "member.h"
#include "websocket.h"
#include "flow.h"
#include "shared.h"
#include "service.h"

#define PUB_LINGER_MS 2000       /* how long replies may still flush at close */
#define HANDLE_INDEX_BITS 24

void host_uuid(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

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

/* Whether this host ended r's client connection itself with nothing of it
 * left to send. Mongrel2 sends no disconnect notice then, so a reader must be
 * told to forget the connection, and the credits owed for it will not reach
 * this host: its flow entry goes now. (A close still waiting in the flow
 * backlog is left to the credits that will send it.) */
static int closed_here(lubeck *h, lbk_req *r)
{
    if (!r->conn_closed || flow_backlog(h, r->m2.sender, r->m2.conn_id) > 0) return 0;
    flow_gone(h, r->m2.sender, r->m2.conn_id);
    return 1;
}

void host_req_free(lubeck *h, lbk_req *r)
{
    if (r->reader_link) member_done(h, r->reader_link - 1, r->reader_tag, closed_here(h, r));
    r->reader_link = 0;
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

static void req_finish(lubeck *h, lbk_req *r)
{
    services_req_ended(h, r);
    host_unpark(h, r);
    h->inflight--;
    host_req_free(h, r);
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

/* The scheduler's hooks (sched_init in lubeck_start...). */
static void task_ended(void *ud, lbk_task *t, int failed)
{
    lubeck *h = ud;
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

/* A cancelled request's code keeps running (to clean up) but never waits
 * again: each wait returns nil, reason at once. The first wait of a request
 * makes it reachable by disconnect notices and its deadline. */
static int wait_begins(void *ud, lbk_task *t, lua_State *L)
{
    lbk_req *r = t->req;
    if (!r) return 0;
    if (r->cancelled) {
        lua_pushnil(L);
        lua_pushstring(L, r->cancelled);
        return 2;
    }
    host_park(ud, r);
    return 0;
}

static void gen_idle(void *ud, lbk_gen *g)
{
    gen_release(g);
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

/* The pipeline's entry takes a fixed number of arguments (LuaJIT compiles a
 * function with fixed arguments, never one with `...`):
 *   entry(handle, method_bit, has_body, route, n, c1, c2, c3, c4, rest)
 * with the route's n captures in c1..c4, or all of them in the table rest when
 * there are more than four. For a 405 (route -1), n is 1 and c1 the mask of
 * the methods the path allows. tests/spec/handler_spec.lua checks each
 * argument as pipeline.lua receives it. */
#define ENTRY_NARGS 10
#define ENTRY_SLOTS 4

static void push_nils(lua_State *co, int n)
{
    for (int i = 0; i < n; i++) lua_pushnil(co);
}

/* n, c1..c4, rest (an optional group that did not match is nil) */
static void push_captures(lua_State *co, const slice *captures, int n)
{
    lua_pushinteger(co, n);
    if (n > ENTRY_SLOTS) {
        push_nils(co, ENTRY_SLOTS);
        lua_createtable(co, n, 0);
        for (int i = 0; i < n; i++) {
            if (!captures[i].p) continue;
            lua_pushlstring(co, captures[i].p, captures[i].n);
            lua_rawseti(co, -2, i + 1);
        }
        return;
    }
    for (int i = 0; i < n; i++) {
        if (captures[i].p) lua_pushlstring(co, captures[i].p, captures[i].n);
        else lua_pushnil(co);
    }
    push_nils(co, ENTRY_SLOTS - n + 1);   /* the unused slots, and no rest */
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
    lua_pushinteger(co, (lua_Integer)r->method_bit);   /* the method without making a string */
    lua_pushboolean(co, m->body.n > 0 || r->upload_path);
    if (res == ROUTER_FOUND) {
        lua_pushinteger(co, match.route + 1);
        push_captures(co, match.captures, match.ncaptures);
    } else if (res == ROUTER_NOT_FOUND) {
        lua_pushinteger(co, 0);
        push_captures(co, NULL, 0);
    } else {
        lua_pushinteger(co, -1);
        lua_pushinteger(co, 1);
        lua_pushinteger(co, (lua_Integer)match.allowed);
        push_nils(co, ENTRY_SLOTS);       /* c2..c4 and rest */
    }
    sched_start(t, ENTRY_NARGS);
}

static void refuse_upload(lubeck *h, lbk_req *r, const char *why)
{
    log_warn("%.*s %.*s: upload refused: %s", (int)r->m2.method.n, r->m2.method.p,
             (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p, why);
    host_answer(h, r, 400, SLICE_LIT("Bad Request: upload refused\n"), NULL, 0);
}

/* `lubeck serve` asks through Mongrel2 whether the whole path answers before it
 * prints the URL; the app never sees that request. The answer names this
 * process so that serve can wait until every worker has answered one. */
static int answer_probe(lubeck *h, lbk_req *r)
{
    const m2_header *probe = m2_header_get(&r->m2, "x-lubeck-probe", 14);
    if (!probe || !slice_eq(probe->value, h->probe_token)) return 0;
    char pid[16];
    int pid_len = snprintf(pid, sizeof pid, "%d", (int)getpid());
    const slice worker[] = { SLICE_LIT("X-Lubeck-Worker"), { pid, (size_t)pid_len } };
    int quiet = h->quiet;
    h->quiet = 1;
    host_answer(h, r, 204, SLICE_LIT(""), worker, 1);
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
        host_answer(h, r, 503, SLICE_LIT("Service Unavailable: too busy, retry shortly\n"), retry, 1);
        return 1;
    }
    if (h->max_headers > 0 && r->m2.headers.n > h->max_headers) {
        log_warn("%.*s %.*s: %d headers (--max-headers %d): answered 431", (int)r->m2.method.n,
                 r->m2.method.p, (int)(r->m2.path.n > 300 ? 300 : r->m2.path.n), r->m2.path.p,
                 r->m2.headers.n, h->max_headers);
        host_answer(h, r, 431, SLICE_LIT("Request Header Fields Too Large\n"), NULL, 0);
        return 1;
    }
    if (h->max_body > 0 && r->m2.body.n > h->max_body) {
        host_answer(h, r, 413, SLICE_LIT("Payload Too Large\n"), NULL, 0);
        return 1;
    }
    return 0;
}

/* Stopping: what arrives is not started. (A host connected straight to
 * Mongrel2 cannot tell it to stop routing here, so it answers until it lets
 * go.) The connection stays open: Mongrel2 has read the whole request, and a
 * client that reconnects at once only adds to what is in flight at let-go. */
static void refuse_stopping(lubeck *h, lbk_req *r)
{
    static const slice retry[] = { SLICE_LIT("Retry-After"), SLICE_LIT("1") };
    r->started = ev_now(h->loop);
    r->keep_alive = wants_keep_alive(&r->m2);
    reply_spec spec = { .status = 503, .headers = retry, .nheaders = 1 };
    host_reply_defaults(h, r, &spec);
    host_respond(h, r, &spec, SLICE_LIT("Service Unavailable: shutting down, retry shortly\n"));
    host_req_free(h, r);
}

/* A frame from front f (NULL: injected or from a reader), or handed by reader
 * link - 1 with tag (link 0: not from a reader). */
static void on_frame(lubeck *h, lbk_front *f, zmq_msg_t *msg, int link, uint64_t tag)
{
    lbk_req *r = req_alloc(h);
    if (!r) {
        log_error_limited("out of memory: dropped a request");
        if (link) member_done(h, link - 1, tag, 0);
        return;
    }
    r->front = f ? f->index : -1;
    r->front_epoch = f ? f->epoch : 0;
    r->reader_link = link;
    r->reader_tag = tag;
    zmq_msg_move(&r->msg, msg);
    const char *err = NULL;
    if (m2_parse(zmq_msg_data(&r->msg), zmq_msg_size(&r->msg), &r->m2, &err) != 0) {
        log_error_limited("dropped a malformed frame of %zu bytes: %s",
                          zmq_msg_size(&r->msg), err);
        host_req_free(h, r);
        return;
    }
    if (f && (f->sender_len != r->m2.sender.n || memcmp(f->sender, r->m2.sender.p, r->m2.sender.n)) &&
        r->m2.sender.n <= sizeof f->sender) {
        memcpy(f->sender, r->m2.sender.p, r->m2.sender.n);
        f->sender_len = r->m2.sender.n;
    }
    switch (r->m2.kind) {
    case M2_DISCONNECT:
        flow_gone(h, r->m2.sender, r->m2.conn_id);
        host_cancel_conn(h, r->m2.sender, r->m2.conn_id);
        host_req_free(h, r);
        return;
    case M2_CREDITS: {
        size_t written = flow_credits_written(&r->m2);
        /* Behind a reader, the worker that owns the connection gets its
         * notices; a credit for a connection unknown here moves nothing. */
        flow_credit(h, r->m2.sender, r->m2.conn_id, written);
        host_req_free(h, r);
        return;
    }
    case M2_NOTICE:
        host_req_free(h, r);   /* never routed, never answered (docs/protocol.md, Notices) */
        return;
    case M2_HTTP:
        flow_request_seen(h, &r->m2);
        break;
    }
    if (websocket_frame(h, &r->m2)) {   /* METHOD WEBSOCKET: to its session, never routed */
        host_req_free(h, r);
        return;
    }
    if (host_is_upload_start(&r->m2)) {
        host_req_free(h, r);
        return;
    }
    if (h->probe_token[0] && answer_probe(h, r)) return;
    /* A reader hands a leaving member only what it must finish (frames in
     * transit when it left, later messages of connections it holds): served. */
    if (h->stopping && !link) return refuse_stopping(h, r);
    if (over_limits(h, r)) return;
    if (r->m2.upload_done.p) {
        const char *why = host_upload_accept(h, r);
        if (why) return refuse_upload(h, r, why);
    }
    dispatch(h, r);
}

/* What is written to stdout (access lines, a handler's print) is flushed
 * LOG_FLUSH_DELAY after it was written, not at each loop iteration: under
 * load that was a write() for every few requests. */
#define LOG_FLUSH_DELAY 0.1

static void log_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    log_flush();
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    lubeck *h = w->data;
    host_fronts_prepare(h);
    if (log_pending() && !ev_is_active(&h->log_timer)) {
        ev_timer_set(&h->log_timer, LOG_FLUSH_DELAY, 0);   /* (a stopped timer keeps what was left: 0) */
        ev_timer_start(loop, &h->log_timer);
    }
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
    services_bus_kinds();
    h->loop = loop;
    h->max_inflight = 10000;
    h->max_headers = 256;
    h->app = strdup(cfg->app);
    h->send_spec = dup_or_null(cfg->send_spec);
    if (cfg->sender_id && *cfg->sender_id) snprintf(h->sender_id, sizeof h->sender_id, "%s", cfg->sender_id);
    else host_uuid(h->sender_id);
    h->recv_spec = dup_or_null(cfg->recv_spec);
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
    /* Channels (with their Redis link) and Postgres live as long as the host;
     * what pg.listen hears is delivered to this host's channels. */
    h->channels = channels_new(loop);
    h->pg = h->channels ? pg_new(loop, channels_deliver_cb, h->channels) : NULL;
    if (!h->pg) {
        snprintf(err, errlen, "out of memory");
        lubeck_free(h);
        return NULL;
    }
    static const lbk_sched_hooks hooks = {
        .task_ended = task_ended, .wait_begins = wait_begins, .gen_idle = gen_idle };
    sched_init(&h->sched, h->loop, &hooks, h);
    ev_prepare_init(&h->prepare, prepare_cb);
    h->prepare.data = h;
    ev_init(&h->log_timer, log_timer_cb);
    h->heartbeat = 1.0;
    h->cosockets = cosockets_new(h->loop);
    if (host_park_init(h) != 0 || !h->cosockets) {
        snprintf(err, errlen, "out of memory");
        lubeck_free(h);
        return NULL;
    }
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
    int rc = copy ? 0 : -1;
    for (char *s = copy ? strtok_r(copy, ";", &save) : NULL; s; s = strtok_r(NULL, ";", &save)) {
        if (zmq_connect(sock, s) != 0) {
            host_set_error(h, "cannot connect %s to %s: %s", what, s, zmq_strerror(errno));
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

/* The requests come in through one PULL socket per front (front.c); the
 * replies go out on one PUB connected to every front, where each Mongrel2
 * takes those that name its sender UUID. */
static int open_sockets(lubeck *h)
{
    h->zctx = zmq_ctx_new();
    if (!h->zctx) {
        host_set_error(h, "zmq_ctx_new: %s", zmq_strerror(errno));
        return -1;
    }
    /* A member's reply socket is an XPUB: it sees Mongrel2 subscribe, which
     * tells it when a reply can no longer be lost (member.c). */
    h->pub = zmq_socket(h->zctx, h->member ? ZMQ_XPUB : ZMQ_PUB);
    int zero = 0, linger = PUB_LINGER_MS;
    zmq_setsockopt(h->pub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(h->pub, ZMQ_LINGER, &linger, sizeof linger);
    host_set_heartbeat(h, h->pub);
    if (h->member) return 0;   /* requests come from readers, which own the fronts */
    if (host_fronts_open(h) != 0) return -1;
    return connect_all(h, h->pub, h->recv_spec, "the reply socket");
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
    if (!h->member && (!h->send_spec || !h->recv_spec)) {
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
    if (h->member) {
        if (member_start(h) != 0) return -1;
    } else {
        host_fronts_start(h);
    }
    ev_prepare_start(h->loop, &h->prepare);
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
    on_frame(h, NULL, &msg, 0, 0);
    zmq_msg_close(&msg);
}

void host_on_frame(lubeck *h, lbk_front *f, zmq_msg_t *msg)
{
    on_frame(h, f, msg, 0, 0);
}

void host_receive(lubeck *h, zmq_msg_t *msg, int link, uint64_t tag)
{
    on_frame(h, NULL, msg, link + 1, tag);
}

/* Stops taking requests without letting go of Mongrel2 yet: what arrives from
 * now on is answered 503 with Retry-After (ZeroMQ would discard it at a
 * disconnect; behind a reader, the reader is told we are leaving and routes
 * nothing new here), parked channel waits wake with nil, "closing" so their handlers
 * answer, WebSocket sessions get a close frame. The fronts are closed by
 * lubeck_free, after the caller's drain. */
void lubeck_stop(lubeck *h)
{
    if (!h->started || h->stopping) return;
    h->stopping = 1;
    if (h->member) member_leave(h);   /* the reader routes nothing new here */
    services_stop(h);   /* waiters told "closing"; WebSockets get close frames (1001) */
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
    host_req_release_held(r);   /* its cosockets */
    for (lbk_task *t = r->tasks; t; t = t->req_next) sched_unwait(t);
}

/* Then frees its tasks; a retired generation closes with its last one (its
 * coroutines go with its Lua state). */
static void abandon_tasks(lubeck *h, lbk_req *r)
{
    while (r->tasks) {
        lbk_task *t = r->tasks;
        r->tasks = t->req_next;
        sched_task_drop(t);
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
    h->stopping = h->started;   /* what is still queued is answered 503, never started */
    host_fronts_close(h);
    ev_prepare_stop(h->loop, &h->prepare);
    ev_timer_stop(h->loop, &h->log_timer);
    log_flush_final();
    sched_stop(&h->sched);
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
    host_park_free(h);
    services_free(h);
    member_free(h);
    if (h->pub) zmq_close(h->pub);
    if (h->zctx) zmq_ctx_term(h->zctx);
    for (int i = 0; i < h->nnatives; i++) free(h->natives[i].name);
    free(h->natives);
    free(h->app);
    free(h->send_spec);
    free(h->recv_spec);
    free(h->upload_dir);
    free(h->upload_chroot);
    free(h);
}
