/* sock:connect: an IP address, a name (resolved on a helper thread, each of
 * its addresses tried in turn) or "unix:/path"; first from the keep-alive
 * pool by the pool key; with backlog, within the pool's limit on connections
 * in use, waiting in its queue when the limit is reached. */
#define _GNU_SOURCE
#include "cosocket_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <lauxlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

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
        sock_drop_fd(s);
        return -1;
    }
    return 0;
}

static void connect_next(lbk_sock *s, int err);

void sock_connect_ready(lbk_sock *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (!err) {
        lua_pushinteger(s->wr.waiter->co, 1);
        return sock_half_done(&s->wr, 1);
    }
    ev_io_stop(s->h->loop, &s->wr.io);
    sock_drop_fd(s);
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
            return sock_half_done(&s->wr, 1);
        }
        if (rc == 0) {
            sock_half_rearm(&s->wr, EV_WRITE);   /* sock_connect_ready takes it from here */
            return;
        }
    }
    sock_release_slot(s);
    sock_half_fail(&s->wr, sock_errno_text(err ? err : ECONNREFUSED), 0);
}

static void resolved(void *arg, struct addrinfo *addrs, const char *err)
{
    lbk_sock *s = arg;
    s->resolving = NULL;
    if (!addrs) {
        sock_release_slot(s);
        return sock_half_fail(&s->wr, err, 0);
    }
    s->addrs = s->next_addr = addrs;   /* the socket owns the list now */
    s->wr.op = OP_CONNECT;             /* the same wait goes on, now for the connect */
    connect_next(s, 0);
}

/* connect's options table: pool (the key), pool_size, backlog. */
static void connect_options(lua_State *L, int idx, lbk_sock *s, const char **pool)
{
    if (lua_isnoneornil(L, idx)) return;
    sock_arg_table(L, "connect", idx);
    lua_getfield(L, idx, "pool");
    if (!lua_isnil(L, -1)) {
        size_t plen;
        *pool = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &plen) : NULL;
        if (!*pool || plen == 0 || plen >= COSOCKET_POOL_KEY_MAX)
            sock_arg_error(L, "connect", idx, "bad \"pool\" option: a non-empty string expected");
    }
    lua_getfield(L, idx, "pool_size");
    if (!lua_isnil(L, -1)) {
        lua_Integer n = lua_tointeger(L, -1);
        if (!lua_isnumber(L, -1) || n < 1)
            sock_arg_error(L, "connect", idx, "bad \"pool_size\" option: a positive number expected");
        s->pool_size = (int)n;
    }
    lua_getfield(L, idx, "backlog");
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1) || lua_tointeger(L, -1) < 0)
            sock_arg_error(L, "connect", idx, "bad \"backlog\" option: a non-negative number expected");
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
        *err = sock_errno_text(e);
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

void sock_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    lbk_sock *s = w->data;
    if (s->wr.op != OP_QUEUED || !s->wr.waiter) {
        sock_release_slot(s);
        return;
    }
    const char *err = NULL;
    switch (connect_attempt(s, &err)) {
    case ATTEMPT_CONNECTED:
        lua_pushinteger(s->wr.waiter->co, 1);
        return sock_half_done(&s->wr, 1);
    case ATTEMPT_FAILED:
        sock_release_slot(s);
        return sock_half_fail(&s->wr, err, 0);
    case ATTEMPT_CONNECTING:
        s->wr.op = OP_CONNECT;
        return sock_half_rearm(&s->wr, EV_WRITE);
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
int sock_l_connect(lua_State *L)
{
    lbk_sock *s = sock_check(L, "connect");
    size_t hlen;
    const char *host = sock_arg_string(L, "connect", 2, &hlen);
    int is_unix = hlen > 5 && memcmp(host, "unix:", 5) == 0;
    int port = 0, opts_at = 3;
    if (!is_unix) {
        port = (int)sock_arg_number(L, "connect", 3);
        opts_at = 4;
        if (hlen == 0 || hlen >= sizeof s->host) return sock_arg_error(L, "connect", 2, "bad host");
        if (port <= 0 || port > 65535) return sock_arg_error(L, "connect", 3, "bad port (1 to 65535)");
    } else {
        if (hlen - 5 >= sizeof ((struct sockaddr_un *)0)->sun_path)
            return sock_arg_error(L, "connect", 2, "unix socket path too long");
        if (lua_type(L, 3) == LUA_TNUMBER) opts_at = 4;   /* ("unix:/p", port, opts) */
    }
    const char *pool = NULL;
    s->pool_size = 0;
    s->backlog = -1;
    connect_options(L, opts_at, s, &pool);
    if (s->rd.op != OP_NONE || s->wr.op != OP_NONE) return sock_push_fail(L, "socket busy");
    lbk_task *t = sched_current(s->h, L, "sock:connect");
    sock_close(s);
    memcpy(s->host, host, hlen + 1);
    s->port = port;
    if (pool) snprintf(s->key, sizeof s->key, "%s", pool);
    else if (is_unix) snprintf(s->key, sizeof s->key, "%s", host);
    else snprintf(s->key, sizeof s->key, "%s:%d", host, port);
    sock_attach_to_req(s, t);

    if (s->backlog >= 0) {
        lbk_pool_group *g = cosocket_group(s->h, s->key);
        if (!g) return sock_push_fail(L, "out of memory");
        s->queued.go = queued_go;
        int size = s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE;
        int rc = cosocket_group_enter(g, size, s->backlog, &s->queued);
        if (rc < 0) return sock_push_fail(L, "too many waiting connect operations");
        if (rc == 0) return sock_begin_wait(L, t, &s->wr, OP_QUEUED, 0, s->connect_timeout);
        s->group = g;
    }
    const char *err = NULL;
    switch (connect_attempt(s, &err)) {
    case ATTEMPT_CONNECTED:
        lua_pushinteger(L, 1);
        return 1;
    case ATTEMPT_FAILED:
        sock_release_slot(s);
        return sock_push_fail(L, err);
    case ATTEMPT_CONNECTING:
        return sock_begin_wait(L, t, &s->wr, OP_CONNECT, EV_WRITE, s->connect_timeout);
    case ATTEMPT_RESOLVING:
    default:
        return sock_begin_wait(L, t, &s->wr, OP_RESOLVE, 0, s->connect_timeout);
    }
}

