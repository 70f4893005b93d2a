/* lubeck.tcp(): OpenResty-style cosockets. Every call that would block parks
 * the calling coroutine on the socket's ev_io (and its timer) and returns
 * through sched_complete when the operation is done, so a handler reads like
 * blocking code while the worker serves others. A socket has two halves, a
 * reader and a writer, so one coroutine can wait in receive while another
 * sends. Names are resolved on a helper thread (cosocket_resolve.c); idle
 * connections kept by setkeepalive wait in the pool (cosocket_pool.c); TLS is
 * tls.c. A request's sockets close when it ends. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "scheduler.h"
#include "tls.h"

#define SOCK_MT "lubeck.Socket"
#define DEFAULT_TIMEOUT 60.0     /* seconds: also what settimeout(0) means */
#define READ_CHUNK 65536
#define DEFAULT_POOL_SIZE 30
#define DEFAULT_IDLE 60.0

enum op { OP_NONE, OP_QUEUED, OP_RESOLVE, OP_CONNECT, OP_SEND, OP_RECV, OP_HANDSHAKE };
enum attempt { ATTEMPT_CONNECTED, ATTEMPT_FAILED, ATTEMPT_CONNECTING, ATTEMPT_RESOLVING };
enum recv_kind { RECV_LINE, RECV_ALL, RECV_BYTES, RECV_UNTIL, RECV_ANY };

/* One direction's wait: the coroutine in it and the readiness it waits for. */
typedef struct lbk_half {
    enum op op;
    lbk_task *waiter;
    int self_ref;                /* keeps the userdata alive while an op is pending */
    ev_io io;
    struct lbk_sock *sock;
} lbk_half;

/* receiveuntil's iterator: the pattern and where a sized read left off. */
typedef struct lbk_until {
    int inclusive;
    int ended;                   /* sized reads: the pattern was consumed, next call → nil */
} lbk_until;

typedef struct lbk_sock {
    lubeck *h;
    int fd;
    double connect_timeout, send_timeout, read_timeout;   /* seconds */
    char key[COSOCKET_POOL_KEY_MAX];   /* the pool key: the pool option, or "host:port" */
    int pool_size;               /* connect's pool_size: setkeepalive's default */
    int backlog;                 /* connect's backlog (-1: none): pool_size limits use */
    char host[256];              /* what connect was given ("unix:/path" or a host) */
    int port;
    lbk_pool_group *group;       /* the pool whose slot it holds (with backlog) */
    lbk_queued queued;           /* its place in that pool's queue */
    ev_timer kick;               /* its turn came: the connect goes on from the loop */
    lbk_half rd, wr;
    lbk_tls *tls;                /* after sslhandshake */
    /* send in progress: the string is held by send_ref */
    int send_ref;
    const char *send_data;
    size_t send_len, send_off;
    /* receive buffer: data is buf[off, len) */
    char *buf;
    size_t off, len, cap;
    enum recv_kind recv_kind;
    size_t recv_want;            /* bytes, the max of receiveany, or a sized until's size */
    const char *until_pat;       /* pattern of the running receiveuntil (held by its closure) */
    size_t until_len, until_from;
    lbk_until *until;
    int eof;
    lbk_resolve *resolving;
    struct addrinfo *addrs;      /* a name's addresses, tried in order */
    struct addrinfo *next_addr;
    char server_name[256];       /* for sslhandshake */
    int want_session;            /* sslhandshake's first argument was not false */
    lbk_req *req;                /* owner: closed when it ends */
    struct lbk_sock *req_prev, *req_next;
    int reused;                  /* times taken from the pool */
} lbk_sock;

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

static void attach_to_req(lbk_sock *s, lbk_task *t)
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

static void forget_addrs(lbk_sock *s)
{
    if (s->addrs) freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
}

static void half_clear(lbk_half *hf)
{
    lbk_sock *s = hf->sock;
    lua_State *L = hf->waiter ? hf->waiter->gen->L : NULL;
    ev_io_stop(s->h->loop, &hf->io);
    if (hf == &s->wr) {
        if (hf->op == OP_QUEUED) {
            cosocket_group_dequeue(&s->queued);
            ev_timer_stop(s->h->loop, &s->kick);
        }
        forget_addrs(s);
        if (L && s->send_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->send_ref);
        s->send_ref = LUA_NOREF;
    }
    if (L && hf->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, hf->self_ref);
    hf->self_ref = LUA_NOREF;
    hf->op = OP_NONE;
    hf->waiter = NULL;
}

/* Resumes the half's task with the values it already has on its stack. */
static void half_done(lbk_half *hf, int nvalues)
{
    lbk_task *t = hf->waiter;
    half_clear(hf);
    sched_complete(t, nvalues);
}

static void close_fd(lbk_sock *s);

/* Ends the half's wait with nil, err; close_it closes the socket too (which
 * wakes the other half's waiter, never this one's: it is detached first). */
static void half_fail(lbk_half *hf, const char *err, int close_it)
{
    lbk_task *t = hf->waiter;
    lua_pushnil(t->co);
    lua_pushstring(t->co, err);
    half_clear(hf);
    if (close_it) close_fd(hf->sock);
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
    half_clear(hf);
    lua_pushnil(t->co);
    lua_pushliteral(t->co, "closed");
    sched_wake(t, 2);
}

/* Gives up the pool slot a connect with backlog took: the next queued connect
 * of that pool gets it. */
static void release_slot(lbk_sock *s)
{
    lbk_pool_group *g = s->group;
    if (!g) return;
    s->group = NULL;
    cosocket_group_leave(g);
}

/* Closes the descriptor only (a connect trying the next address keeps the rest). */
static void drop_fd(lbk_sock *s)
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

static void close_fd(lbk_sock *s)
{
    half_abort(&s->rd);
    half_abort(&s->wr);
    release_slot(s);
    if (s->fd < 0) return;
    drop_fd(s);
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
    half_clear(hf);
    if (close_it) close_fd(s);
}

static int begin_wait(lua_State *L, lbk_task *t, lbk_half *hf, enum op op, int events,
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
static void half_rearm(lbk_half *hf, int events)
{
    lbk_sock *s = hf->sock;
    if ((hf->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&hf->io)) return;
    ev_io_stop(s->h->loop, &hf->io);
    ev_io_set(&hf->io, s->fd, events);
    ev_io_start(s->h->loop, &hf->io);
}

/* ---- errors and results ------------------------------------------------------- */

static const char *errno_text(int e)
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

static int push_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* ---- connect ------------------------------------------------------------------ */

/* Opens the socket and starts connecting: 1 connected, 0 in progress (the
 * writer waits for writability), -1 failed with *err set. */
static int start_connect(lbk_sock *s, const struct sockaddr *addr, socklen_t len, int *err)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { *err = errno; return -1; }
    if (addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    s->fd = fd;
    s->h->nsocks++;
    if (connect(fd, addr, len) == 0) return 1;
    if (errno != EINPROGRESS) {
        *err = errno;
        drop_fd(s);
        return -1;
    }
    return 0;
}

static void connect_next(lbk_sock *s, int err);

static void finish_connect(lbk_sock *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!err) {
        lua_pushinteger(s->wr.waiter->co, 1);
        return half_done(&s->wr, 1);
    }
    ev_io_stop(s->h->loop, &s->wr.io);
    drop_fd(s);
    connect_next(s, err);   /* a name may have another address (IPv6 first, then IPv4) */
}

/* Tries the name's remaining addresses in order until one connects or starts
 * connecting; fails with the last error when none is left. */
static void connect_next(lbk_sock *s, int err)
{
    while (s->next_addr) {
        struct addrinfo *ai = s->next_addr;
        s->next_addr = ai->ai_next;
        int rc = start_connect(s, ai->ai_addr, ai->ai_addrlen, &err);
        if (rc > 0) {
            lua_pushinteger(s->wr.waiter->co, 1);
            return half_done(&s->wr, 1);
        }
        if (rc == 0) {
            half_rearm(&s->wr, EV_WRITE);   /* finish_connect takes it from here */
            return;
        }
    }
    release_slot(s);
    half_fail(&s->wr, errno_text(err ? err : ECONNREFUSED), 0);
}

static void resolved(void *arg, struct addrinfo *addrs, const char *err)
{
    lbk_sock *s = arg;
    s->resolving = NULL;
    if (!addrs) {
        release_slot(s);
        return half_fail(&s->wr, err, 0);
    }
    s->addrs = s->next_addr = addrs;   /* the socket owns the list now */
    s->wr.op = OP_CONNECT;             /* the same wait goes on, now for the connect */
    connect_next(s, 0);
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* Misuse raises "bad argument #n to 'method' (...)", numbered as in a method
 * call (the socket is not counted), however the method was called: through
 * pcall or a local, a standard argerror would name '?' instead. */
static int arg_error(lua_State *L, const char *method, int idx, const char *msg)
{
    return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, method, msg);
}

static int arg_type_error(lua_State *L, const char *method, int idx, const char *expected)
{
    return arg_error(L, method, idx, lua_pushfstring(L, "%s expected, got %s", expected,
                                                     luaL_typename(L, idx)));
}

static lua_Number arg_number(lua_State *L, const char *method, int idx)
{
    if (!lua_isnumber(L, idx)) arg_type_error(L, method, idx, "number");
    return lua_tonumber(L, idx);
}

static lua_Number arg_opt_number(lua_State *L, const char *method, int idx, lua_Number def)
{
    return lua_isnoneornil(L, idx) ? def : arg_number(L, method, idx);
}

static const char *arg_string(lua_State *L, const char *method, int idx, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER)
        arg_type_error(L, method, idx, "string");
    return lua_tolstring(L, idx, len);
}

static void arg_table(lua_State *L, const char *method, int idx)
{
    if (!lua_istable(L, idx)) arg_type_error(L, method, idx, "table");
}

static lbk_sock *check_sock(lua_State *L, const char *method)
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

/* connect's options table: pool (the key), pool_size, backlog. */
static void connect_options(lua_State *L, int idx, lbk_sock *s, const char **pool)
{
    if (lua_isnoneornil(L, idx)) return;
    arg_table(L, "connect", idx);
    lua_getfield(L, idx, "pool");
    if (!lua_isnil(L, -1)) {
        size_t plen;
        *pool = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &plen) : NULL;
        if (!*pool || plen == 0 || plen >= COSOCKET_POOL_KEY_MAX)
            arg_error(L, "connect", idx, "bad \"pool\" option: a non-empty string expected");
    }
    lua_getfield(L, idx, "pool_size");
    if (!lua_isnil(L, -1)) {
        lua_Integer n = lua_tointeger(L, -1);
        if (!lua_isnumber(L, -1) || n < 1)
            arg_error(L, "connect", idx, "bad \"pool_size\" option: a positive number expected");
        s->pool_size = (int)n;
    }
    lua_getfield(L, idx, "backlog");
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || lua_tointeger(L, -1) < 0)
            arg_error(L, "connect", idx, "bad \"backlog\" option: a non-negative number expected");
        s->backlog = (int)lua_tointeger(L, -1);
    }
    lua_pop(L, 3);   /* pool stays valid: the table holds the string */
}

/* Starts the connect set up in s (host, port, key): from the pool, at once,
 * or by waiting for the connect (or the resolver). *err on failure. */
static enum attempt connect_attempt(lbk_sock *s, const char **err)
{
    void *tls = NULL;
    int fd = cosocket_pool_take(s->h, s->key, &s->reused, &tls);
    if (fd >= 0) {
        s->fd = fd;
        s->tls = tls;
        s->h->nsocks++;
        return ATTEMPT_CONNECTED;
    }
    s->reused = 0;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t alen = 0;
    if (memcmp(s->host, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, s->host + 5, strlen(s->host + 5));   /* length checked by connect */
        alen = sizeof *un;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            a4->sin_port = htons((uint16_t)s->port);
            alen = sizeof *a4;
        } else if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons((uint16_t)s->port);
            alen = sizeof *a6;
        }
    }
    if (alen) {
        int e = 0, rc = start_connect(s, (struct sockaddr *)&ss, alen, &e);
        if (rc > 0) return ATTEMPT_CONNECTED;
        if (rc == 0) return ATTEMPT_CONNECTING;
        *err = errno_text(e);
        return ATTEMPT_FAILED;
    }
    /* A name: getaddrinfo blocks, so it runs on a thread of its own. */
    s->resolving = cosocket_resolve(s->h, s->host, s->port, resolved, s);
    if (!s->resolving) {
        *err = "cannot start the resolver thread";
        return ATTEMPT_FAILED;
    }
    return ATTEMPT_RESOLVING;
}

/* A queued connect's turn (cosocket_group_leave, inside someone else's call):
 * go on from the loop. */
static void queued_go(lbk_queued *q, lbk_pool_group *g)
{
    lbk_sock *s = (lbk_sock *)((char *)q - offsetof(lbk_sock, queued));
    s->group = g;
    ev_timer_set(&s->kick, 0, 0);
    ev_timer_start(s->h->loop, &s->kick);
}

static void kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    lbk_sock *s = w->data;
    if (s->wr.op != OP_QUEUED || !s->wr.waiter) {
        release_slot(s);
        return;
    }
    const char *err = NULL;
    switch (connect_attempt(s, &err)) {
    case ATTEMPT_CONNECTED:
        lua_pushinteger(s->wr.waiter->co, 1);
        return half_done(&s->wr, 1);
    case ATTEMPT_FAILED:
        release_slot(s);
        return half_fail(&s->wr, err, 0);
    case ATTEMPT_CONNECTING:
        s->wr.op = OP_CONNECT;
        return half_rearm(&s->wr, EV_WRITE);
    case ATTEMPT_RESOLVING:
        s->wr.op = OP_RESOLVE;
        return;
    }
}

/* sock:connect(host, port [, opts]) or sock:connect("unix:/path" [, opts])
 * → 1 | nil, err. opts: pool (the pool's name), pool_size, backlog. A pooled
 * connection is found by the pool name, which must name everything that makes
 * a session (credentials, database): the default "host:port" says nothing of
 * them. With backlog, at most pool_size connections of the pool are in use at
 * once; up to backlog more connects wait for one of them to be closed or
 * pooled, within the connect timeout. */
static int l_connect(lua_State *L)
{
    lbk_sock *s = check_sock(L, "connect");
    size_t hlen;
    const char *host = arg_string(L, "connect", 2, &hlen);
    int is_unix = hlen > 5 && memcmp(host, "unix:", 5) == 0;
    int port = 0, opts_at = 3;
    if (!is_unix) {
        port = (int)arg_number(L, "connect", 3);
        opts_at = 4;
        if (hlen == 0 || hlen >= sizeof s->host) return arg_error(L, "connect", 2, "bad host");
        if (port <= 0 || port > 65535) return arg_error(L, "connect", 3, "bad port (1 to 65535)");
    } else {
        if (hlen - 5 >= sizeof ((struct sockaddr_un *)0)->sun_path)
            return arg_error(L, "connect", 2, "unix socket path too long");
        if (lua_type(L, 3) == LUA_TNUMBER) opts_at = 4;   /* ("unix:/p", port, opts) */
    }
    const char *pool = NULL;
    s->pool_size = 0;
    s->backlog = -1;
    connect_options(L, opts_at, s, &pool);
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return push_fail(L, "socket busy");
    lbk_task *t = sched_current(s->h, L, "sock:connect");
    close_fd(s);
    memcpy(s->host, host, hlen + 1);
    s->port = port;
    if (pool) snprintf(s->key, sizeof s->key, "%s", pool);
    else if (is_unix) snprintf(s->key, sizeof s->key, "%s", host);
    else snprintf(s->key, sizeof s->key, "%s:%d", host, port);
    attach_to_req(s, t);

    if (s->backlog >= 0) {
        lbk_pool_group *g = cosocket_group(s->h, s->key);
        if (!g) return push_fail(L, "out of memory");
        s->queued.go = queued_go;
        int size = s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE;
        int rc = cosocket_group_enter(g, size, s->backlog, &s->queued);
        if (rc < 0) return push_fail(L, "too many waiting connect operations");
        if (rc == 0) return begin_wait(L, t, &s->wr, OP_QUEUED, 0, s->connect_timeout);
        s->group = g;
    }
    const char *err = NULL;
    switch (connect_attempt(s, &err)) {
    case ATTEMPT_CONNECTED:
        lua_pushinteger(L, 1);
        return 1;
    case ATTEMPT_FAILED:
        release_slot(s);
        return push_fail(L, err);
    case ATTEMPT_CONNECTING:
        return begin_wait(L, t, &s->wr, OP_CONNECT, EV_WRITE, s->connect_timeout);
    case ATTEMPT_RESOLVING:
    default:
        return begin_wait(L, t, &s->wr, OP_RESOLVE, 0, s->connect_timeout);
    }
}

/* ---- the transport: plain, or TLS after sslhandshake ----------------------------- */

/* >0 bytes read, 0 end of stream, -1 would block (*events: what to wait for),
 * -2 error (*err). */
static ssize_t transport_recv(lbk_sock *s, char *buf, size_t n, int *events, const char **err)
{
    if (s->tls) return tls_recv(s->tls, buf, n, events, err);
    for (;;) {
        ssize_t got = recv(s->fd, buf, n, 0);
        if (got >= 0) return got;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { *events = EV_READ; return -1; }
        *err = errno_text(errno);
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
        *err = errno_text(errno);
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
    lbk_sock *s = check_sock(L, "send");
    int type = lua_type(L, 2);
    if (type != LUA_TSTRING && type != LUA_TNUMBER && type != LUA_TTABLE)
        return arg_type_error(L, "send", 2, "string, number or array table");
    lua_settop(L, 2);
    if (type == LUA_TTABLE) cosocket_flatten(L, 2);   /* one string, for one write */
    size_t len;
    const char *data = lua_tolstring(L, 2, &len);
    if (s->fd < 0) return push_fail(L, "closed");
    if (s->wr.op != OP_NONE) return push_fail(L, "socket busy writing");
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
        close_fd(s);
        return push_fail(L, err);
    }
    lua_pushvalue(L, 2);   /* the string must outlive the wait */
    s->send_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return begin_wait(L, t, &s->wr, OP_SEND, events, s->send_timeout);
}

/* ---- receive --------------------------------------------------------------------- */

static int buf_reserve(lbk_sock *s, size_t want)
{
    if (s->off > 0 && s->off == s->len) s->off = s->len = 0;
    if (s->cap - s->len >= want) return 0;
    if (s->off > 0) {   /* compact before growing */
        memmove(s->buf, s->buf + s->off, s->len - s->off);
        s->len -= s->off;
        s->off = 0;
        if (s->cap - s->len >= want) return 0;
    }
    size_t cap = s->cap ? s->cap : READ_CHUNK;
    while (cap - s->len < want) cap *= 2;
    char *grown = realloc(s->buf, cap);
    if (!grown) return -1;
    s->buf = grown;
    s->cap = cap;
    return 0;
}

/* Reads what the socket has: 1 if anything arrived (or the end), 0 to wait
 * (*events), -1 on error (*err). */
static int fill(lbk_sock *s, int *events, const char **err)
{
    if (buf_reserve(s, READ_CHUNK) != 0) { *err = "out of memory"; return -1; }
    ssize_t n = transport_recv(s, s->buf + s->len, s->cap - s->len, events, err);
    if (n > 0) { s->len += (size_t)n; return 1; }
    if (n == 0) { s->eof = 1; return 1; }
    return n == -1 ? 0 : -1;
}

static void push_taken(lbk_sock *s, lua_State *L, size_t n, size_t skip)
{
    lua_pushlstring(L, s->buf + s->off, n);
    s->off += n + skip;
}

/* receiveuntil's step: the data before the pattern (and the pattern, when
 * inclusive); with a size, chunks of at most that many bytes, then nil. */
static int try_until(lbk_sock *s, lua_State *L)
{
    const char *data = s->buf + s->off;
    size_t have = s->len - s->off, safe;
    long at = cosocket_until_find(data, have, s->until_pat, s->until_len, s->until_from, &safe);
    size_t size = s->recv_want;
    if (at >= 0) {
        size_t before = (size_t)at;
        if (size && before > size) {   /* a full chunk, the pattern still ahead */
            push_taken(s, L, size, 0);
            return 1;
        }
        size_t with = s->until->inclusive ? s->until_len : 0;
        if (size && before + with == 0) {   /* nothing left before it: the end */
            s->off += s->until_len;
            lua_pushnil(L);
            return 1;
        }
        push_taken(s, L, before + with, s->until_len - with);
        if (size) s->until->ended = 1;
        return 1;
    }
    if (size && safe >= size) {
        push_taken(s, L, size, 0);
        return 1;
    }
    s->until_from = safe;
    return 0;
}

/* Pushes the result on L when the buffer satisfies the pending receive:
 * returns the count of values, or 0 when more bytes are needed. */
static int try_satisfy(lbk_sock *s, lua_State *L)
{
    const char *data = s->buf + s->off;
    size_t have = s->len - s->off;
    switch (s->recv_kind) {
    case RECV_LINE: {
        const char *nl = have ? memchr(data, '\n', have) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - data);
            lua_pushlstring(L, data, n > 0 && data[n - 1] == '\r' ? n - 1 : n);
            s->off += n + 1;
            return 1;
        }
        break;
    }
    case RECV_BYTES:
        if (have >= s->recv_want) {
            push_taken(s, L, s->recv_want, 0);
            return 1;
        }
        break;
    case RECV_ANY:
        if (have > 0) {
            push_taken(s, L, have < s->recv_want ? have : s->recv_want, 0);
            return 1;
        }
        break;
    case RECV_UNTIL:
        if (try_until(s, L)) return 1;
        break;
    case RECV_ALL:
        if (s->eof) {
            push_taken(s, L, have, 0);
            return 1;
        }
        return 0;
    }
    if (s->eof) {   /* nil, "closed", partial */
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        push_taken(s, L, have, 0);
        return 3;
    }
    return 0;
}

/* Reads until the receive is satisfied or the socket would block. Returns the
 * count of values pushed on L, or 0 to wait for *events; *broken is set when
 * the caller must close the socket (after ending its own wait). */
static int progress_recv(lbk_sock *s, lua_State *L, int *events, int *broken)
{
    for (;;) {
        int n = try_satisfy(s, L);
        if (n) return n;
        const char *err = NULL;
        int rc = fill(s, events, &err);
        if (rc == 0) return 0;
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            push_taken(s, L, s->len - s->off, 0);
            *broken = 1;
            return 3;
        }
    }
}

/* Runs the receive set up in s->recv_*: at once, or after a wait. */
static int start_recv(lua_State *L, lbk_sock *s, const char *what)
{
    if (s->fd < 0) return push_fail(L, "closed");
    if (s->rd.op != OP_NONE) return push_fail(L, "socket busy reading");
    lbk_task *t = sched_current(s->h, L, what);
    int events = EV_READ, broken = 0;
    int n = progress_recv(s, L, &events, &broken);
    if (broken) close_fd(s);
    if (n) return n;
    return begin_wait(L, t, &s->rd, OP_RECV, events, s->read_timeout);
}

/* sock:receive("*l" | "*a" | n) → data | nil, err, partial */
static int l_receive(lua_State *L)
{
    lbk_sock *s = check_sock(L, "receive");
    if (lua_isnumber(L, 2)) {   /* a number, or a string of one (as ngx_lua takes) */
        lua_Number n = lua_tonumber(L, 2);
        if (n < 0) return arg_error(L, "receive", 2, "bad pattern argument: negative byte count");
        s->recv_kind = RECV_BYTES;
        s->recv_want = (size_t)n;
    } else {
        const char *p = lua_isnoneornil(L, 2) ? "*l" : arg_string(L, "receive", 2, NULL);
        if (!strcmp(p, "*l") || !strcmp(p, "l")) s->recv_kind = RECV_LINE;
        else if (!strcmp(p, "*a") || !strcmp(p, "a")) s->recv_kind = RECV_ALL;
        else return arg_error(L, "receive", 2, "bad pattern argument: \"*l\", \"*a\" or a byte count expected");
    }
    return start_recv(L, s, "sock:receive");
}

/* sock:receiveany(max) → up to max bytes, as soon as there are any */
static int l_receiveany(lua_State *L)
{
    lbk_sock *s = check_sock(L, "receiveany");
    lua_Number max = arg_number(L, "receiveany", 2);
    if (max < 1) return arg_error(L, "receiveany", 2, "bad max argument: at least 1 expected");
    s->recv_kind = RECV_ANY;
    s->recv_want = (size_t)max;
    return start_recv(L, s, "sock:receiveany");
}

/* The iterator receiveuntil returns: reader([size]) */
static int l_until_step(lua_State *L)
{
    lbk_sock *s = lua_touserdata(L, lua_upvalueindex(1));
    lbk_until *u = lua_touserdata(L, lua_upvalueindex(3));
    lua_Number size = 0;
    if (!lua_isnoneornil(L, 1)) {
        if (!lua_isnumber(L, 1) || (size = lua_tonumber(L, 1)) < 0)
            return luaL_error(L, "bad argument #1 to receiveuntil's reader (size: a number >= 0)");
    }
    if (u->ended) {   /* the previous sized call reached the pattern */
        u->ended = 0;
        lua_pushnil(L);
        return 1;
    }
    s->recv_kind = RECV_UNTIL;
    s->recv_want = (size_t)size;
    s->until_pat = lua_tolstring(L, lua_upvalueindex(2), &s->until_len);
    s->until_from = 0;
    s->until = u;
    /* start_recv wants the socket at index 1 (its wait keeps it alive). */
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));   /* the pattern too, while waiting */
    return start_recv(L, s, "receiveuntil's reader");
}

/* sock:receiveuntil(pattern [, {inclusive = true}]) → reader */
static int l_receiveuntil(lua_State *L)
{
    check_sock(L, "receiveuntil");
    size_t plen;
    arg_string(L, "receiveuntil", 2, &plen);
    if (plen == 0) return arg_error(L, "receiveuntil", 2, "pattern is empty");
    int inclusive = 0;
    if (!lua_isnoneornil(L, 3)) {
        arg_table(L, "receiveuntil", 3);
        lua_getfield(L, 3, "inclusive");
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
            return arg_error(L, "receiveuntil", 3, "bad \"inclusive\" option: a boolean expected");
        inclusive = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lbk_until *u = lua_newuserdata(L, sizeof *u);
    u->inclusive = inclusive;
    u->ended = 0;
    lua_pushcclosure(L, l_until_step, 3);
    return 1;
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
        finish_connect(s);
        return;
    case OP_HANDSHAKE:
        handshake_step(s);
        return;
    case OP_SEND: {
        int events = 0;
        const char *err = NULL;
        int rc = send_some(s, &events, &err);
        if (rc == 0) return half_rearm(hf, events);
        if (rc < 0) return half_fail(hf, err, 1);
        lua_pushinteger(co, (lua_Integer)s->send_len);
        return half_done(hf, 1);
    }
    case OP_RECV: {
        int events = EV_READ, broken = 0;
        int n = progress_recv(s, co, &events, &broken);
        if (!n) return half_rearm(hf, events);
        lbk_task *t = hf->waiter;
        half_clear(hf);
        if (broken) close_fd(s);
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
    if (rc == 0) return half_rearm(&s->wr, events);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        return half_fail(&s->wr, msg, 1);
    }
    lua_State *co = s->wr.waiter->co;
    push_session(s, co);
    half_done(&s->wr, 1);
}

/* sock:sslhandshake([reused_session [, server_name [, verify]]]) → session | nil, err.
 * verify defaults to true (OpenResty's is false: a default that checks nothing
 * is a trap); the name is checked against the certificate and sent as SNI. */
static int l_sslhandshake(lua_State *L)
{
    lbk_sock *s = check_sock(L, "sslhandshake");
    void *session = NULL;
    if (!lua_isnoneornil(L, 2) && !lua_isboolean(L, 2)) session = tls_check_session(L, 2);
    size_t nlen = 0;
    const char *name = lua_isnoneornil(L, 3) ? NULL : arg_string(L, "sslhandshake", 3, &nlen);
    if (nlen >= sizeof s->server_name) return arg_error(L, "sslhandshake", 3, "server name too long");
    int verify = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    if (s->fd < 0) return push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return push_fail(L, "socket busy");
    lbk_task *t = sched_current(s->h, L, "sock:sslhandshake");
    s->want_session = !(lua_isboolean(L, 2) && !lua_toboolean(L, 2));
    if (s->tls) {   /* a pooled TLS connection: its handshake is done */
        push_session(s, L);
        return 1;
    }
    if (s->len > s->off) return push_fail(L, "unread data before the TLS handshake");
    const char *err = NULL;
    s->tls = tls_new(s->h, s->fd, name, verify, session, &err);
    if (!s->tls) return push_fail(L, err);
    int events = 0;
    int rc = tls_handshake(s->tls, &events, &err);
    if (rc > 0) {
        push_session(s, L);
        return 1;
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        close_fd(s);
        return 2;
    }
    return begin_wait(L, t, &s->wr, OP_HANDSHAKE, events, s->connect_timeout);
}

/* ---- the rest of the API -------------------------------------------------------------- */

/* A timeout in ms as ngx_lua reads it: 0 is the default, negative is misuse. */
static double check_timeout(lua_State *L, const char *method, int idx)
{
    lua_Number ms = arg_number(L, method, idx);
    if (ms < 0 || ms > 2147483647.0) arg_error(L, method, idx, "bad timeout value");
    return ms == 0 ? DEFAULT_TIMEOUT : ms / 1000.0;
}

/* sock:settimeout(ms): connect, send and read alike */
static int l_settimeout(lua_State *L)
{
    lbk_sock *s = check_sock(L, "settimeout");
    s->connect_timeout = s->send_timeout = s->read_timeout = check_timeout(L, "settimeout", 2);
    return 0;
}

/* sock:settimeouts(connect_ms, send_ms, read_ms) */
static int l_settimeouts(lua_State *L)
{
    lbk_sock *s = check_sock(L, "settimeouts");
    s->connect_timeout = check_timeout(L, "settimeouts", 2);
    s->send_timeout = check_timeout(L, "settimeouts", 3);
    s->read_timeout = check_timeout(L, "settimeouts", 4);
    return 0;
}

/* sock:setoption(name, value) → true | nil, err */
static int l_setoption(lua_State *L)
{
    lbk_sock *s = check_sock(L, "setoption");
    const char *name = arg_string(L, "setoption", 2, NULL);
    int level = SOL_SOCKET, opt;
    if (!strcmp(name, "keepalive")) opt = SO_KEEPALIVE;
    else if (!strcmp(name, "reuseaddr")) opt = SO_REUSEADDR;
    else if (!strcmp(name, "tcp-nodelay")) { level = IPPROTO_TCP; opt = TCP_NODELAY; }
    else if (!strcmp(name, "sndbuf")) opt = SO_SNDBUF;
    else if (!strcmp(name, "rcvbuf")) opt = SO_RCVBUF;
    else return arg_error(L, "setoption", 2, "unknown option (keepalive, reuseaddr, tcp-nodelay, sndbuf or rcvbuf)");
    int value = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : (int)arg_number(L, "setoption", 3);
    if (s->fd < 0) return push_fail(L, "closed");
    if (setsockopt(s->fd, level, opt, &value, sizeof value) != 0) return push_fail(L, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static void tls_free_cb(void *tls) { tls_free(tls); }

/* sock:setkeepalive([idle_ms [, pool_size]]) → 1 | nil, err (and closed) */
static int l_setkeepalive(lua_State *L)
{
    lbk_sock *s = check_sock(L, "setkeepalive");
    lua_Number idle_ms = arg_opt_number(L, "setkeepalive", 2, 0);
    if (idle_ms < 0) return arg_error(L, "setkeepalive", 2, "bad idle timeout: negative");
    double idle = idle_ms > 0 ? idle_ms / 1000.0 : DEFAULT_IDLE;
    lua_Integer size = (lua_Integer)arg_opt_number(L, "setkeepalive", 3, s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE);
    if (size < 1) return arg_error(L, "setkeepalive", 3, "bad pool size: at least 1");
    if (s->fd < 0) return push_fail(L, "closed");
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return push_fail(L, "socket busy");
    /* Only a clean connection goes back: bytes still unread (in our buffer or
     * in the kernel's) would be read by the next user as its own reply. */
    int state = s->eof ? COSOCKET_PEER_CLOSED
              : s->len > s->off ? COSOCKET_DIRTY
              : s->tls ? tls_idle_state(s->tls) : cosocket_fd_state(s->fd);
    if (state != COSOCKET_CLEAN) {
        close_fd(s);
        return push_fail(L, state == COSOCKET_DIRTY ? "connection in dubious state" : "closed");
    }
    int fd = s->fd;
    lbk_tls *tls = s->tls;
    s->fd = -1;
    s->tls = NULL;
    s->h->nsocks--;
    detach_from_req(s);
    release_slot(s);
    if (cosocket_pool_put(s->h, s->key, fd, s->reused, tls, tls_free_cb, idle, (int)size) != 0) {
        if (tls) tls_free(tls);
        close(fd);
    }
    lua_pushinteger(L, 1);
    return 1;
}

static int l_getreusedtimes(lua_State *L)
{
    lbk_sock *s = check_sock(L, "getreusedtimes");
    if (s->fd < 0) return push_fail(L, "closed");
    lua_pushinteger(L, s->reused);
    return 1;
}

/* sock:close() → 1 | nil, "closed". A coroutine waiting on the socket gets
 * nil, "closed". */
static int l_close(lua_State *L)
{
    lbk_sock *s = check_sock(L, "close");
    if (s->fd < 0) return push_fail(L, "closed");
    close_fd(s);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    lbk_sock *s = check_sock(L, "__gc");
    close_fd(s);
    ev_timer_stop(s->h->loop, &s->kick);
    forget_addrs(s);
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_sock *s = check_sock(L, "__tostring");
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
    ev_init(&s->kick, kick_cb);
    s->kick.data = s;
    luaL_getmetatable(L, SOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void cosocket_req_ended(lbk_req *r)
{
    while (r->socks) {
        lbk_sock *s = r->socks;
        close_fd(s);
        detach_from_req(s);   /* also when it never got a descriptor */
    }
}

void cosocket_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg methods[] = {
        { "connect", l_connect }, { "send", l_send }, { "receive", l_receive },
        { "receiveany", l_receiveany }, { "receiveuntil", l_receiveuntil },
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
