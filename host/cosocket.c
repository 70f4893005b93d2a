/* lubeck.tcp(): OpenResty-style cosockets. Every call that would block parks
 * the calling coroutine on the socket's ev_io (and its timer) and returns
 * through sched_complete when the operation is done, so a handler reads like
 * blocking code while the worker serves others. Names are resolved on a helper
 * thread (getaddrinfo blocks); idle connections kept by setkeepalive wait in a
 * per-host pool keyed "host:port". A request's sockets close when it ends. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "scheduler.h"

#define SOCK_MT "lubeck.Socket"
#define DEFAULT_TIMEOUT 60.0
#define READ_CHUNK 65536
#define DEFAULT_POOL_SIZE 30
#define DEFAULT_IDLE 60.0
#define POOL_KEY_MAX COSOCKET_POOL_KEY_MAX

enum op { OP_NONE, OP_RESOLVE, OP_CONNECT, OP_SEND, OP_RECV };
enum recv_kind { RECV_LINE, RECV_ALL, RECV_BYTES };

typedef struct lbk_resolve {
    int cancelled;               /* the socket's wait ended first: drop the answer */
    struct lbk_resolve *next;
    struct lbk_resolver *resolver;
    struct ev_loop *loop;
    struct lbk_sock *sock;
    char host[256], port[16];
    struct addrinfo *res;
    int err;
} lbk_resolve;

typedef struct lbk_resolver {
    pthread_mutex_t lock;
    int pending;                 /* lookups still on their threads */
    lbk_resolve *done;
    ev_async async;
} lbk_resolver;

typedef struct lbk_sock {
    lubeck *h;
    int fd;
    double timeout;              /* seconds, < 0 = none */
    char key[POOL_KEY_MAX];      /* the pool key: the pool option, or "host:port" */
    enum op op;
    lbk_task *waiter;
    int self_ref;                /* keeps the userdata alive while an op is pending */
    ev_io io;
    /* send in progress */
    int send_ref;
    const char *send_data;
    size_t send_len, send_off;
    /* receive buffer: data is buf[off, len) */
    char *buf;
    size_t off, len, cap;
    enum recv_kind recv_kind;
    size_t recv_want;
    int eof;
    lbk_resolve *resolving;
    struct addrinfo *addrs;      /* a name's addresses, tried in order */
    struct addrinfo *next_addr;
    lbk_req *req;                /* owner: closed when it ends */
    struct lbk_sock *req_prev, *req_next;
    int reused;                  /* times taken from the pool */
} lbk_sock;


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

static void close_fd(lbk_sock *s)
{
    if (s->fd < 0) return;
    ev_io_stop(s->h->loop, &s->io);
    close(s->fd);
    s->fd = -1;
    s->h->nsocks--;
    s->off = s->len = 0;
    s->eof = 0;
    detach_from_req(s);
}

/* ---- finishing an operation ------------------------------------------------- */

static void forget_addrs(lbk_sock *s)
{
    if (s->addrs) freeaddrinfo(s->addrs);
    s->addrs = s->next_addr = NULL;
}

static void op_clear(lbk_sock *s)
{
    forget_addrs(s);
    lua_State *L = s->waiter ? s->waiter->gen->L : NULL;
    if (s->fd >= 0) ev_io_stop(s->h->loop, &s->io);
    if (L && s->send_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->send_ref);
    s->send_ref = LUA_NOREF;
    s->op = OP_NONE;
    if (L && s->self_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
    s->self_ref = LUA_NOREF;
    s->waiter = NULL;
}

/* Resumes the waiting task with the values it already has on its stack. */
static void op_done(lbk_sock *s, int nvalues)
{
    lbk_task *t = s->waiter;
    op_clear(s);
    sched_complete(t, nvalues);
}

static void op_fail(lbk_sock *s, const char *err, int close_it)
{
    lbk_task *t = s->waiter;
    lua_pushnil(t->co);
    lua_pushstring(t->co, err);
    if (close_it) close_fd(s);
    op_done(s, 2);
}

/* Timeout or cancel: the task is resumed by sched; only undo our side. */
static void undo_op(lbk_task *t)
{
    lbk_sock *s = t->wait_on;
    if (!s) return;
    int cancelled = t->req && t->req->cancelled;
    if (s->resolving) {
        s->resolving->cancelled = 1;
        s->resolving = NULL;
    }
    /* A half-done connect or send leaves the stream in an unknown state. */
    int close_it = cancelled || s->op == OP_CONNECT || s->op == OP_SEND;
    s->waiter = t;
    op_clear(s);
    if (close_it) close_fd(s);
}

static int begin_wait(lua_State *L, lbk_task *t, lbk_sock *s, enum op op, int events)
{
    s->op = op;
    s->waiter = t;
    lua_pushvalue(L, 1);
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (events && s->fd >= 0) {
        ev_io_set(&s->io, s->fd, events);
        ev_io_start(s->h->loop, &s->io);
    }
    return sched_wait(L, t, s, s->timeout, undo_op, 0);
}

/* ---- errors ----------------------------------------------------------------- */

static const char *errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED: return "connection refused";
    case ECONNRESET: return "connection reset by peer";
    case EPIPE: return "closed";
    case ETIMEDOUT: return "timeout";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    default: return strerror(e);
    }
}

/* ---- name resolution on a helper thread ------------------------------------- */


static int start_connect(lbk_sock *s, const struct sockaddr *addr, socklen_t len, int *err);
static void connect_next(lbk_sock *s, int err);

static void resolved_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    lbk_resolver *rs = w->data;
    pthread_mutex_lock(&rs->lock);
    lbk_resolve *list = rs->done;
    rs->done = NULL;
    for (lbk_resolve *q = list; q; q = q->next) rs->pending--;
    pthread_mutex_unlock(&rs->lock);
    while (list) {
        lbk_resolve *q = list;
        list = q->next;
        if (!q->cancelled) {
            lbk_sock *s = q->sock;
            s->resolving = NULL;
            if (q->err || !q->res) {
                char msg[320];
                snprintf(msg, sizeof msg, "%s could not be resolved (%s)", q->host,
                         gai_strerror(q->err ? q->err : EAI_NONAME));
                op_fail(s, msg, 0);
            } else {
                s->addrs = s->next_addr = q->res;   /* the socket owns the list now */
                q->res = NULL;
                s->op = OP_CONNECT;   /* the same wait goes on, now for the connect */
                connect_next(s, 0);
            }
        }
        if (q->res) freeaddrinfo(q->res);
        free(q);
    }
}

static void *resolve_thread(void *arg)
{
    lbk_resolve *q = arg;
    lbk_resolver *rs = q->resolver;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    q->err = getaddrinfo(q->host, q->port, &hints, &q->res);
    pthread_mutex_lock(&rs->lock);
    q->next = rs->done;
    rs->done = q;
    pthread_mutex_unlock(&rs->lock);
    ev_async_send(q->loop, &rs->async);
    return NULL;
}

static lbk_resolver *resolver(lubeck *h)
{
    if (h->resolver) return h->resolver;
    lbk_resolver *rs = calloc(1, sizeof *rs);
    if (!rs) return NULL;
    pthread_mutex_init(&rs->lock, NULL);
    ev_async_init(&rs->async, resolved_cb);
    rs->async.data = rs;
    ev_async_start(h->loop, &rs->async);
    h->resolver = rs;
    return rs;
}

/* ---- connect ------------------------------------------------------------------ */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Opens the socket and starts connecting: 1 connected, 0 in progress (the io
 * watcher waits for writability), -1 failed with *err set. */
static int start_connect(lbk_sock *s, const struct sockaddr *addr, socklen_t len, int *err)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { *err = errno; return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
    s->h->nsocks++;
    if (connect(fd, addr, len) == 0) return 1;
    if (errno != EINPROGRESS) {
        *err = errno;
        close_fd(s);
        return -1;
    }
    ev_io_set(&s->io, fd, EV_WRITE);
    ev_io_start(s->h->loop, &s->io);
    return 0;
}

static void finish_connect(lbk_sock *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!err) {
        lua_pushinteger(s->waiter->co, 1);
        return op_done(s, 1);
    }
    close_fd(s);
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
            lua_pushinteger(s->waiter->co, 1);
            return op_done(s, 1);
        }
        if (rc == 0) return;   /* finish_connect takes it from here */
    }
    op_fail(s, errno_text(err ? err : ECONNREFUSED), 0);
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static lbk_sock *check_sock(lua_State *L)
{
    return luaL_checkudata(L, 1, SOCK_MT);
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

static int busy(lua_State *L, lbk_sock *s)
{
    if (s->op == OP_NONE) return 0;
    return luaL_error(L, "socket busy: another coroutine is using it");
}

/* sock:connect(host, port [, {pool = name}]) → 1 | nil, err. Connections in
 * the pool are found by the pool name, which must name everything that makes
 * a session (credentials, database): the default "host:port" says nothing of them. */
static int l_connect(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    size_t hlen;
    const char *host = luaL_checklstring(L, 2, &hlen);
    int port = (int)luaL_checkinteger(L, 3);
    busy(L, s);
    if (hlen == 0 || hlen >= 256 || port <= 0 || port > 65535)
        return luaL_argerror(L, hlen == 0 || hlen >= 256 ? 2 : 3, "bad host or port");
    const char *pool = NULL;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "pool");
        if (!lua_isnil(L, -1)) {
            size_t plen;
            pool = lua_tolstring(L, -1, &plen);
            if (!pool || plen == 0 || plen >= POOL_KEY_MAX)
                return luaL_argerror(L, 4, "pool must be a non-empty string");
        }
    }
    lbk_task *t = sched_current(s->h, L, "sock:connect");
    close_fd(s);
    if (pool) snprintf(s->key, sizeof s->key, "%s", pool);
    else snprintf(s->key, sizeof s->key, "%s:%d", host, port);
    attach_to_req(s, t);

    int fd = cosocket_pool_take(s->h, s->key, &s->reused);
    if (fd >= 0) {
        s->fd = fd;
        s->h->nsocks++;
        lua_pushinteger(L, 1);
        return 1;
    }
    s->reused = 0;

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t alen = 0;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        alen = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        alen = sizeof *a6;
    }
    if (alen) {
        int err = 0, rc = start_connect(s, (struct sockaddr *)&ss, alen, &err);
        if (rc > 0) {
            lua_pushinteger(L, 1);
            return 1;
        }
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushstring(L, errno_text(err));
            return 2;
        }
        return begin_wait(L, t, s, OP_CONNECT, 0);
    }

    /* A name: getaddrinfo blocks, so it runs on a thread of its own. */
    lbk_resolver *rs = resolver(s->h);
    lbk_resolve *q = rs ? calloc(1, sizeof *q) : NULL;
    if (!q) return luaL_error(L, "sock:connect: out of memory");
    q->sock = s;
    q->resolver = rs;
    q->loop = s->h->loop;
    snprintf(q->host, sizeof q->host, "%s", host);
    snprintf(q->port, sizeof q->port, "%d", port);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, resolve_thread, q);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(q);
        lua_pushnil(L);
        lua_pushliteral(L, "cannot start the resolver thread");
        return 2;
    }
    rs->pending++;
    s->resolving = q;
    return begin_wait(L, t, s, OP_RESOLVE, 0);
}

/* ---- send ---------------------------------------------------------------------- */

/* Writes what it can; returns 1 when all is sent, 0 to wait, -1 on error. */
static int send_some(lbk_sock *s, int *err)
{
    while (s->send_off < s->send_len) {
        ssize_t n = send(s->fd, s->send_data + s->send_off, s->send_len - s->send_off, MSG_NOSIGNAL);
        if (n > 0) { s->send_off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        *err = errno;
        return -1;
    }
    return 1;
}

/* sock:send(data) → bytes | nil, err */
static int l_send(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    busy(L, s);
    if (s->fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    lbk_task *t = sched_current(s->h, L, "sock:send");
    s->send_data = data;
    s->send_len = len;
    s->send_off = 0;
    int err = 0, rc = send_some(s, &err);
    if (rc == 1) {
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
    }
    if (rc < 0) {
        close_fd(s);
        lua_pushnil(L);
        lua_pushstring(L, errno_text(err));
        return 2;
    }
    lua_pushvalue(L, 2);   /* the string must outlive the wait */
    s->send_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return begin_wait(L, t, s, OP_SEND, EV_WRITE);
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

/* Reads what the socket has; 1 if anything arrived, 0 on EAGAIN, -1 error. */
static int fill(lbk_sock *s, int *err)
{
    if (buf_reserve(s, READ_CHUNK) != 0) { *err = ENOMEM; return -1; }
    for (;;) {
        ssize_t n = recv(s->fd, s->buf + s->len, s->cap - s->len, 0);
        if (n > 0) { s->len += (size_t)n; return 1; }
        if (n == 0) { s->eof = 1; return 1; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        *err = errno;
        return -1;
    }
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
            lua_pushlstring(L, data, s->recv_want);
            s->off += s->recv_want;
            return 1;
        }
        break;
    case RECV_ALL:
        if (s->eof) {
            lua_pushlstring(L, data, have);
            s->off = s->len;
            return 1;
        }
        return 0;
    }
    if (s->eof) {   /* nil, "closed", partial */
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        lua_pushlstring(L, data, have);
        s->off = s->len;
        return 3;
    }
    return 0;
}

/* Reads until the receive is satisfied or the socket would block. Returns the
 * count of values pushed on L, or 0 to wait. */
static int progress_recv(lbk_sock *s, lua_State *L)
{
    for (;;) {
        int n = try_satisfy(s, L);
        if (n) return n;
        int err = 0, rc = fill(s, &err);
        if (rc == 0) return 0;
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushstring(L, errno_text(err));
            lua_pushlstring(L, s->buf + s->off, s->len - s->off);
            close_fd(s);
            return 3;
        }
    }
}

/* sock:receive("*l" | "*a" | n) → data | nil, err, partial */
static int l_receive(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    busy(L, s);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, 2);
        if (n < 0) return luaL_argerror(L, 2, "byte count must not be negative");
        s->recv_kind = RECV_BYTES;
        s->recv_want = (size_t)n;
    } else {
        const char *p = luaL_optstring(L, 2, "*l");
        if (!strcmp(p, "*l") || !strcmp(p, "l")) s->recv_kind = RECV_LINE;
        else if (!strcmp(p, "*a") || !strcmp(p, "a")) s->recv_kind = RECV_ALL;
        else return luaL_argerror(L, 2, "expected \"*l\", \"*a\" or a byte count");
    }
    if (s->fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    lbk_task *t = sched_current(s->h, L, "sock:receive");
    int n = progress_recv(s, L);
    if (n) return n;
    return begin_wait(L, t, s, OP_RECV, EV_READ);
}

/* ---- readiness ---------------------------------------------------------------------- */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    lbk_sock *s = w->data;
    if (!s->waiter) {
        ev_io_stop(loop, w);
        return;
    }
    lua_State *co = s->waiter->co;
    switch (s->op) {
    case OP_CONNECT:
        finish_connect(s);
        return;
    case OP_SEND: {
        int err = 0, rc = send_some(s, &err);
        if (rc == 0) return;
        if (rc < 0) return op_fail(s, errno_text(err), 1);
        lua_pushinteger(co, (lua_Integer)s->send_len);
        return op_done(s, 1);
    }
    case OP_RECV: {
        int n = progress_recv(s, co);
        if (n) op_done(s, n);
        return;
    }
    default:
        ev_io_stop(loop, w);
    }
}

/* ---- the rest of the API -------------------------------------------------------------- */

/* sock:settimeout(ms) */
static int l_settimeout(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    lua_Number ms = luaL_checknumber(L, 2);
    s->timeout = ms < 0 ? -1 : ms / 1000.0;
    return 0;
}

/* sock:setkeepalive([idle_ms [, pool_size]]) → 1 | nil, err (and closed) */
static int l_setkeepalive(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    double idle = luaL_optnumber(L, 2, DEFAULT_IDLE * 1000) / 1000.0;
    int size = (int)luaL_optinteger(L, 3, DEFAULT_POOL_SIZE);
    busy(L, s);
    if (s->fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    /* Only a clean connection goes back: bytes still unread (in our buffer or
     * in the kernel's) would be read by the next user as its own reply. */
    int state = s->eof ? COSOCKET_PEER_CLOSED
              : s->len > s->off ? COSOCKET_DIRTY : cosocket_fd_state(s->fd);
    if (state != COSOCKET_CLEAN) {
        close_fd(s);
        lua_pushnil(L);
        lua_pushstring(L, state == COSOCKET_DIRTY ? "connection in dubious state" : "closed");
        return 2;
    }
    int fd = s->fd;
    ev_io_stop(s->h->loop, &s->io);
    s->fd = -1;
    s->h->nsocks--;
    detach_from_req(s);
    if (size < 1 || cosocket_pool_put(s->h, s->key, fd, s->reused, idle, size) != 0) close(fd);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_getreusedtimes(lua_State *L)
{
    lua_pushinteger(L, check_sock(L)->reused);
    return 1;
}

static int l_close(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    busy(L, s);
    if (s->fd < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    close_fd(s);
    lua_pushinteger(L, 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    close_fd(s);
    forget_addrs(s);
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lbk_sock *s = check_sock(L);
    lua_pushfstring(L, "lubeck.Socket (%s): %p", s->fd >= 0 ? s->key : "closed", (void *)s);
    return 1;
}

/* tcp() → a new, unconnected socket */
static int l_tcp(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    lbk_sock *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->h = g->host;
    s->fd = -1;
    s->timeout = DEFAULT_TIMEOUT;
    s->self_ref = s->send_ref = LUA_NOREF;
    ev_init(&s->io, io_cb);
    s->io.data = s;
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
        { "settimeout", l_settimeout }, { "setkeepalive", l_setkeepalive },
        { "getreusedtimes", l_getreusedtimes }, { "close", l_close }, { NULL, NULL }
    };
    host_lua_class(L, SOCK_MT, methods, l_gc, l_tostring);
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_tcp, 1);
    lua_setfield(L, -2, "tcp");
}

void cosocket_free_all(lubeck *h)
{
    cosocket_pool_free(h);
    if (h->resolver) {
        ev_async_stop(h->loop, &h->resolver->async);
        /* A lookup still on its thread will touch the resolver: leave it be. */
        if (h->resolver->pending == 0) {
            pthread_mutex_destroy(&h->resolver->lock);
            free(h->resolver);
        }
        h->resolver = NULL;
    }
}
