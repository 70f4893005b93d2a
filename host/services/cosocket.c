/* lubeck.tcp(): OpenResty-style cosockets. Every call that would block parks
 * the calling coroutine on the socket's ev_io (and its timer) and returns
 * through sched_complete when the operation is done, so a handler reads like
 * blocking code while the worker serves others. A socket has two halves, a
 * reader and a writer, so one coroutine can wait in receive while another
 * sends. This file: the object, its waits, send, sslhandshake and the options;
 * connect is cosocket_connect.c, receive cosocket_recv.c, names are resolved
 * on a helper thread (cosocket_resolve.c), idle connections wait in the pool
 * (cosocket_pool.c), TLS is tls.c. A request's sockets close when it ends. */
#define _GNU_SOURCE
#include "cosocket_sock.h"

#include <errno.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT 60.0     /* seconds: also what settimeout(0) means */
#define DEFAULT_IDLE 60.0

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* ---- the owner's list ----------------------------------------------------- */

static void detach_from_req(lbk_sock *s)
{
    lbk_req *r = s->req;
    if (!r) return;
    if (s->req_prev) s->req_prev->req_next = s->req_next; else r->socks = s->req_next;
    if (s->req_next) s->req_next->req_prev = s->req_prev;
    s->req = NULL;
    s->req_prev = s->req_next = NULL;
}

void sock_attach_to_req(lbk_sock *s, lbk_task *t)
{
    lbk_req *r = t->req;
    if (!r || s->req == r) return;
    detach_from_req(s);
    s->req = r;
    s->req_next = r->socks;
    if (r->socks) r->socks->req_prev = s;
    r->socks = s;
}

/* ---- finishing an operation ------------------------------------------------- */

void sock_forget_addrs(lbk_sock *s)
{
    if (s->addrs) freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
}

void sock_half_clear(lbk_half *hf)
{
    lbk_sock *s = hf->sock;
    lua_State *L = hf->waiter ? hf->waiter->gen->L : NULL;
    ev_io_stop(s->h->loop, &hf->io);
    if (hf == &s->wr) {
        if (hf->op == OP_QUEUED) {
            cosocket_group_dequeue(&s->queued);
            ev_timer_stop(s->h->loop, &s->kick);
        }
        sock_forget_addrs(s);
        if (L && s->send_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->send_ref);
        s->send_ref = LUA_NOREF;
    }
    if (L && hf->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, hf->self_ref);
    hf->self_ref = LUA_NOREF;
    hf->op = OP_NONE;
    hf->waiter = NULL;
}

/* Resumes the half's task with the values it already has on its stack. */
void sock_half_done(lbk_half *hf, int nvalues)
{
    lbk_task *t = hf->waiter;
    sock_half_clear(hf);
    sched_complete(t, nvalues);
}

/* Ends the half's wait with nil, err; close_it closes the socket too (which
 * wakes the other half's waiter, never this one's: it is detached first). */
void sock_half_fail(lbk_half *hf, const char *err, int close_it)
{
    lbk_task *t = hf->waiter;
    lua_pushnil(t->co);
    lua_pushstring(t->co, err);
    sock_half_clear(hf);
    if (close_it) sock_close(hf->sock);
    sched_complete(t, 2);
}

/* The other half's waiter, when the socket closes under it: woken on the next
 * loop turn with nil, "closed" (never run from inside this call). */
static void half_abort(lbk_half *hf)
{
    lbk_task *t = hf->waiter;
    if (!t) return;
    if (hf->sock->resolving) {
        cosocket_resolve_cancel(hf->sock->resolving);
        hf->sock->resolving = NULL;
    }
    sock_half_clear(hf);
    sched_wake_result(t, 0, "closed");
}

/* Gives up the pool slot a connect with backlog took: the next queued connect
 * of that pool gets it. */
void sock_release_slot(lbk_sock *s)
{
    lbk_pool_group *g = s->group;
    if (!g) return;
    s->group = NULL;
    cosocket_group_leave(g);
}

/* Closes the descriptor only (a connect trying the next address keeps the rest). */
void sock_drop_fd(lbk_sock *s)
{
    if (s->fd < 0) return;
    if (s->tls) {
        tls_free(s->tls);
        s->tls = NULL;
    }
    close(s->fd);
    s->fd = -1;
    s->h->nsocks--;
    s->off = s->len = 0;
    s->eof = 0;
}

void sock_close(lbk_sock *s)
{
    half_abort(&s->rd);
    half_abort(&s->wr);
    sock_release_slot(s);
    if (s->fd < 0) return;
    sock_drop_fd(s);
    detach_from_req(s);
}

/* Timeout or cancel: the task is resumed by sched; only undo our side. */
static void undo_op(lbk_task *t)
{
    lbk_sock *s = t->wait_on;
    if (!s) return;
    lbk_half *hf = s->rd.waiter == t ? &s->rd : &s->wr;
    int cancelled = t->req && t->req->cancelled;
    if (hf == &s->wr && s->resolving) {
        cosocket_resolve_cancel(s->resolving);
        s->resolving = NULL;
    }
    /* A half-done connect, send or handshake leaves the stream in an unknown
     * state; a receive that timed out keeps what it read for the next one. */
    int close_it = cancelled || hf->op != OP_RECV;
    hf->waiter = t;
    sock_half_clear(hf);
    if (close_it) sock_close(s);
}

int sock_begin_wait(lua_State *L, lbk_task *t, lbk_half *hf, enum op op, int events,
                      double timeout)
{
    lbk_sock *s = hf->sock;
    hf->op = op;
    hf->waiter = t;
    lua_pushvalue(L, 1);
    hf->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (events && s->fd >= 0) {
        ev_io_set(&hf->io, s->fd, events);
        ev_io_start(s->h->loop, &hf->io);
    }
    return sched_wait(L, t, s, timeout, undo_op, 0);
}

/* Waits again for what the transport asked (TLS may need to write to read). */
void sock_half_rearm(lbk_half *hf, int events)
{
    lbk_sock *s = hf->sock;
    if ((hf->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&hf->io)) return;
    ev_io_stop(s->h->loop, &hf->io);
    ev_io_set(&hf->io, s->fd, events);
    ev_io_start(s->h->loop, &hf->io);
}

/* ---- errors and results ------------------------------------------------------- */

const char *sock_errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED: return "connection refused";
    case ECONNRESET: return "connection reset by peer";
    case EPIPE: return "closed";
    case ETIMEDOUT: return "timeout";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case ENOENT: return "no such file or directory";
    default: return strerror(e);
    }
}

int sock_push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* Misuse raises "bad argument #n to 'method' (...)", numbered as in a method
 * call (the socket is not counted), however the method was called: through
 * pcall or a local, a standard argerror would name '?' instead. */
int sock_arg_error(lua_State *L, const char *method, int idx, const char *msg)
{
    return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, method, msg);
}

int sock_arg_type_error(lua_State *L, const char *method, int idx, const char *expected)
{
    return sock_arg_error(L, method, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                                     luaL_typename(L, idx)));
}

lua_Number sock_arg_number(lua_State *L, const char *method, int idx)
{
    if (!lua_isnumber(L, idx)) sock_arg_type_error(L, method, idx, "number");
    return lua_tonumber(L, idx);
}

lua_Number sock_arg_opt_number(lua_State *L, const char *method, int idx, lua_Number def)
{
    return lua_isnoneornil(L, idx) ? def : sock_arg_number(L, method, idx);
}

const char *sock_arg_string(lua_State *L, const char *method, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        sock_arg_type_error(L, method, idx, "string");
    return lua_tolstring(L, idx, len);
}

void sock_arg_table(lua_State *L, const char *method, int idx)
{
    if (!lua_istable(L, idx)) sock_arg_type_error(L, method, idx, "table");
}

lbk_sock *sock_check(lua_State *L, const char *method)
{
    lbk_sock *s = lua_touserdata(L, 1);
    if (s && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, SOCK_MT);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) return s;
    }
    luaL_error(L, "bad self to '%s' (lubeck.Socket expected, got %s); call it as sock:%s(...)",
               method, luaL_typename(L, 1), method);
    return NULL;
}

/* ---- the transport: plain, or TLS after sslhandshake ----------------------------- */

/* >0 bytes read, 0 end of stream, -1 would block (*events: what to wait for),
 * -2 error (*err). */
ssize_t sock_transport_recv(lbk_sock *s, char *buf, size_t n, int *events, const char **err)
{
    if (s->tls) return tls_recv(s->tls, buf, n, events, err);
    for (;;) {
        ssize_t got = recv(s->fd, buf, n, 0);
        if (got >= 0) return got;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { *events = EV_READ; return -1; }
        *err = sock_errno_text(errno);
        return -2;
    }
}

static ssize_t transport_send(lbk_sock *s, const char *buf, size_t n, int *events,
                              const char **err)
{
    if (s->tls) return tls_send(s->tls, buf, n, events, err);
    for (;;) {
        ssize_t put = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (put >= 0) return put;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { *events = EV_WRITE; return -1; }
        *err = sock_errno_text(errno);
        return -2;
    }
}

/* ---- send ---------------------------------------------------------------------- */

/* Writes what it can; returns 1 when all is sent, 0 to wait, -1 on error. */
static int send_some(lbk_sock *s, int *events, const char **err)
{
    while (s->send_off < s->send_len) {
        ssize_t n = transport_send(s, s->send_data + s->send_off, s->send_len - s->send_off,
                                   events, err);
        if (n > 0) { s->send_off += (size_t)n; continue; }
        if (n == -1) return 0;
        if (n == 0) *err = "closed";
        return -1;
    }
    return 1;
}

/* A string, a number or a (nested) array of them, as ngx_lua's send takes
 * them: measure (and check) first, then copy into one buffer. Depth-limited:
 * a table that holds itself is an error. */
static size_t piece_len(lua_State *L, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER: {
        size_t len;
        lua_tolstring(L, idx, &len);   /* a number is converted in its (copied) slot */
        return len;
    }
    case LUA_TTABLE: {
        if (depth > 64) luaL_error(L, "bad argument #1 to 'send' (table nested too deep)");
        size_t total = 0;
        int n = (int)lua_objlen(L, idx);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            total += piece_len(L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        return total;
    }
    default:
        luaL_error(L, "bad argument #1 to 'send' (bad data type %s found in the table)",
                   lua_typename(L, lua_type(L, idx)));
        return 0;
    }
}

static char *piece_copy(lua_State *L, int idx, char *out)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        size_t len;
        const char *p = lua_tolstring(L, idx, &len);
        memcpy(out, p, len);
        return out + len;
    }
    int n = (int)lua_objlen(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        out = piece_copy(L, lua_gettop(L), out);
        lua_pop(L, 1);
    }
    return out;
}

void cosocket_flatten(lua_State *L, int idx)
{
    size_t total = piece_len(L, idx, 0);
    char *flat = lua_newuserdata(L, total ? total : 1);
    piece_copy(L, idx, flat);
    lua_pushlstring(L, flat, total);
    lua_replace(L, idx);
    lua_pop(L, 1);
}

/* sock:send(string | number | nested array of them) → bytes | nil, err.
 * A table goes out as one write. */
static int l_send(lua_State *L)
{
    lbk_sock *s = sock_check(L, "send");
    int type = lua_type(L, 2);
    if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TTABLE)
        return sock_arg_type_error(L, "send", 2, "string, number or array table");
    lua_settop(L, 2);
    if (type == LUA_TTABLE) cosocket_flatten(L, 2);   /* one string, for one write */
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    if (s->fd < 0) return sock_push_fail(L, "closed");
    if (s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy writing");
    lbk_task *t = sched_current(s->h, L, "sock:send");
    s->send_data = data;
    s->send_len = len;
    s->send_off = 0;
    int events = 0;
    const char *err = NULL;
    int rc = send_some(s, &events, &err);
    if (rc == 1) {
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
    }
    if (rc < 0) {
        sock_close(s);
        return sock_push_fail(L, err);
    }
    lua_pushvalue(L, 2);   /* the string must outlive the wait */
    s->send_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return sock_begin_wait(L, t, &s->wr, OP_SEND, events, s->send_timeout);
}

/* ---- readiness ---------------------------------------------------------------------- */

static void handshake_step(lbk_sock *s);

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    lbk_half *hf = w->data;
    lbk_sock *s = hf->sock;
    if (!hf->waiter) {
        ev_io_stop(loop, w);
        return;
    }
    lua_State *co = hf->waiter->co;
    switch (hf->op) {
    case OP_CONNECT:
        sock_connect_ready(s);
        return;
    case OP_HANDSHAKE:
        handshake_step(s);
        return;
    case OP_SEND: {
        int events = 0;
        const char *err = NULL;
        int rc = send_some(s, &events, &err);
        if (rc == 0) return sock_half_rearm(hf, events);
        if (rc < 0) return sock_half_fail(hf, err, 1);
        lua_pushinteger(co, (lua_Integer)s->send_len);
        return sock_half_done(hf, 1);
    }
    case OP_RECV: {
        int events = EV_READ, broken = 0;
        int n = sock_progress_recv(s, co, &events, &broken);
        if (!n) return sock_half_rearm(hf, events);
        lbk_task *t = hf->waiter;
        sock_half_clear(hf);
        if (broken) sock_close(s);
        return sched_complete(t, n);
    }
    default:
        ev_io_stop(loop, w);
    }
}

/* ---- TLS ------------------------------------------------------------------------------- */

static void push_session(lbk_sock *s, lua_State *L)
{
    if (s->want_session) tls_push_session(s->tls, L);
    else lua_pushboolean(L, 1);
}

static void handshake_step(lbk_sock *s)
{
    int events = 0;
    const char *err = NULL;
    int rc = tls_handshake(s->tls, &events, &err);
    if (rc == 0) return sock_half_rearm(&s->wr, events);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        return sock_half_fail(&s->wr, msg, 1);
    }
    lua_State *co = s->wr.waiter->co;
    push_session(s, co);
    sock_half_done(&s->wr, 1);
}

/* sock:sslhandshake([reused_session [, server_name [, verify]]]) → session | nil, err.
 * verify defaults to true (OpenResty's is false: a default that checks nothing
 * is a trap); the name is checked against the certificate and sent as SNI. */
static int l_sslhandshake(lua_State *L)
{
    lbk_sock *s = sock_check(L, "sslhandshake");
    void *session = NULL;
    if (!lua_isnoneornil(L, 2) && !lua_isboolean(L, 2)) session = tls_check_session(L, 2);
    size_t nlen = 0;
    const char *name = lua_isnoneornil(L, 3) ? NULL : sock_arg_string(L, "sslhandshake", 3, &nlen);
    if (nlen >= sizeof s->server_name) return sock_arg_error(L, "sslhandshake", 3, "server name too long");
    int verify = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    if (s->fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy");
    lbk_task *t = sched_current(s->h, L, "sock:sslhandshake");
    s->want_session = !(lua_isboolean(L, 2) && !lua_toboolean(L, 2));
    if (s->tls) {   /* a pooled TLS connection: its handshake is done */
        push_session(s, L);
        return 1;
    }
    if (s->len > s->off) return sock_push_fail(L, "unread data before the TLS handshake");
    const char *err = NULL;
    s->tls = tls_new(s->h, s->fd, name, verify, session, &err);
    if (!s->tls) return sock_push_fail(L, err);
    int events = 0;
    int rc = tls_handshake(s->tls, &events, &err);
    if (rc > 0) {
        push_session(s, L);
        return 1;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        sock_close(s);
        return 2;
    }
    return sock_begin_wait(L, t, &s->wr, OP_HANDSHAKE, events, s->connect_timeout);
}

/* ---- the rest of the API -------------------------------------------------------------- */

/* A timeout in ms as ngx_lua reads it: 0 is the default, negative is misuse. */
static double check_timeout(lua_State *L, const char *method, int idx)
{
    lua_Number ms = sock_arg_number(L, method, idx);
    if (ms < 0 || ms > 2147483647.0) sock_arg_error(L, method, idx, "bad timeout value");
    return ms == 0 ? DEFAULT_TIMEOUT : ms / 1000.0;
}

/* sock:settimeout(ms): connect, send and read alike */
static int l_settimeout(lua_State *L)
{
    lbk_sock *s = sock_check(L, "settimeout");
    s->connect_timeout = s->send_timeout = s->read_timeout = check_timeout(L, "settimeout", 2);
    return 0;
}

/* sock:settimeouts(connect_ms, send_ms, read_ms) */
static int l_settimeouts(lua_State *L)
{
    lbk_sock *s = sock_check(L, "settimeouts");
    s->connect_timeout = check_timeout(L, "settimeouts", 2);
    s->send_timeout = check_timeout(L, "settimeouts", 3);
    s->read_timeout = check_timeout(L, "settimeouts", 4);
    return 0;
}

/* sock:setoption(name, value) → true | nil, err */
static int l_setoption(lua_State *L)
{
    lbk_sock *s = sock_check(L, "setoption");
    const char *name = sock_arg_string(L, "setoption", 2, NULL);
    int level = SOL_SOCKET, opt;
    if (!strcmp(name, "keepalive")) opt = SO_KEEPALIVE;
    else if (!strcmp(name, "reuseaddr")) opt = SO_REUSEADDR;
    else if (!strcmp(name, "tcp-nodelay")) { level = IPPROTO_TCP; opt = TCP_NODELAY; }
    else if (!strcmp(name, "sndbuf")) opt = SO_SNDBUF;
    else if (!strcmp(name, "rcvbuf")) opt = SO_RCVBUF;
    else return sock_arg_error(L, "setoption", 2, "unknown option (keepalive, reuseaddr, tcp-nodelay, sndbuf or rcvbuf)");
    int value = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : (int)sock_arg_number(L, "setoption", 3);
    if (s->fd < 0) return sock_push_fail(L, "closed");
    if (setsockopt(s->fd, level, opt, &value, sizeof value) != 0) return sock_push_fail(L, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static void tls_free_cb(void *tls) { tls_free(tls); }

/* sock:setkeepalive([idle_ms [, pool_size]]) → 1 | nil, err (and closed) */
static int l_setkeepalive(lua_State *L)
{
    lbk_sock *s = sock_check(L, "setkeepalive");
    lua_Number idle_ms = sock_arg_opt_number(L, "setkeepalive", 2, 0);
    if (idle_ms < 0) return sock_arg_error(L, "setkeepalive", 2, "bad idle timeout: negative");
    double idle = idle_ms > 0 ? idle_ms / 1000.0 : DEFAULT_IDLE;
    lua_Integer size = (lua_Integer)sock_arg_opt_number(L, "setkeepalive", 3, s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE);
    if (size < 1) return sock_arg_error(L, "setkeepalive", 3, "bad pool size: at least 1");
    if (s->fd < 0) return sock_push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy");
    /* Only a clean connection goes back: bytes still unread (in our buffer or
     * in the kernel's) would be read by the next user as its own reply. */
    int state = s->eof ? COSOCKET_PEER_CLOSED
              : s->len > s->off ? COSOCKET_DIRTY
              : s->tls ? tls_idle_state(s->tls) : cosocket_fd_state(s->fd);
    if (state != COSOCKET_CLEAN) {
        sock_close(s);
        return sock_push_fail(L, state == COSOCKET_DIRTY ? "connection in dubious state" : "closed");
    }
    int fd = s->fd;
    lbk_tls *tls = s->tls;
    s->fd = -1;
    s->tls = NULL;
    s->h->nsocks--;
    detach_from_req(s);
    sock_release_slot(s);
    if (cosocket_pool_put(s->h, s->key, fd, s->reused, tls, tls_free_cb, idle, (int)size) != 0) {
        if (tls) tls_free(tls);
        close(fd);
    }
    lua_pushinteger(L, 1);
    return 1;
}

static int l_getreusedtimes(lua_State *L)
{
    lbk_sock *s = sock_check(L, "getreusedtimes");
    if (s->fd < 0) return sock_push_fail(L, "closed");
    lua_pushinteger(L, s->reused);
    return 1;
}

/* sock:close() → 1 | nil, "closed". A coroutine waiting on the socket gets
 * nil, "closed". */
static int l_close(lua_State *L)
{
    lbk_sock *s = sock_check(L, "close");
    if (s->fd < 0) return sock_push_fail(L, "closed");
    sock_close(s);
    lua_pushinteger(L, 1);
    return 1;
}

/* Closes without waking anyone: for a request that ended (its tasks go with
 * it, and their own undo then finds nothing left to do) and for a socket
 * being collected (the Lua state may be closing). */
static void close_quietly(lbk_sock *s)
{
    if (s->resolving) {
        cosocket_resolve_cancel(s->resolving);
        s->resolving = NULL;
    }
    sock_half_clear(&s->rd);
    sock_half_clear(&s->wr);
    ev_timer_stop(s->h->loop, &s->kick);
    sock_close(s);   /* both halves idle: it wakes nobody */
}

static int l_gc(lua_State *L)
{
    lbk_sock *s = sock_check(L, "__gc");
    close_quietly(s);
    sock_forget_addrs(s);
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_sock *s = sock_check(L, "__tostring");
    lua_pushfstring(L, "lubeck.Socket (%s): %p", s->fd >= 0 ? s->key : "closed", (void *)s);
    return 1;
}

static void half_init(lbk_half *hf, lbk_sock *s)
{
    hf->sock = s;
    hf->self_ref = LUA_NOREF;
    ev_init(&hf->io, io_cb);
    hf->io.data = hf;
}

/* tcp() → a new, unconnected socket */
static int l_tcp(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_sock *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->h = g->host;
    s->fd = -1;
    s->connect_timeout = s->send_timeout = s->read_timeout = DEFAULT_TIMEOUT;
    s->send_ref = LUA_NOREF;
    half_init(&s->rd, s);
    half_init(&s->wr, s);
    s->backlog = -1;
    ev_init(&s->kick, sock_kick_cb);
    s->kick.data = s;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void cosocket_req_ended(lbk_req *r)
{
    while (r->socks) {
        lbk_sock *s = r->socks;
        close_quietly(s);
        detach_from_req(s);   /* also when it never got a descriptor */
    }
}

void cosocket_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = {
        { "connect", sock_l_connect }, { "send", l_send }, { "receive", sock_l_receive },
        { "receiveany", sock_l_receiveany }, { "receiveuntil", sock_l_receiveuntil },
        { "settimeout", l_settimeout }, { "settimeouts", l_settimeouts },
        { "setoption", l_setoption }, { "setkeepalive", l_setkeepalive },
        { "getreusedtimes", l_getreusedtimes }, { "sslhandshake", l_sslhandshake },
        { "close", l_close }, { NULL, NULL }
    };
    host_lua_class(L, SOCK_MT, methods, l_gc, l_tostring);
    tls_open(L, g->host);
    cosocket_udp_open(L, g);
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_tcp, 1);
    lua_setfield(L, -2, "tcp");
}

void cosocket_free_all(lubeck *h)
{
    cosocket_pool_free(h);
    cosocket_resolver_free(h);
    tls_free_all(h);
}
