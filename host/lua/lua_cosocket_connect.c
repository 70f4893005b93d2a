/* sock:connect, the Lua face: the arguments and options, the pool's limit on
 * connections in use (backlog: waiting in its queue when the limit is
 * reached), and the connecting task's wait. The connect itself (the pool,
 * addresses, names) is services/cosocket_connect.c. */
#define _GNU_SOURCE
#include "lua_cosocket.h"

#include <lauxlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

/* Ends the writer's wait with a connect's outcome (CONN_* of cosocket.h). */
static void connect_outcome(lbk_sock *s, int status, const char *err)
{
    switch (status) {
    case CONN_DONE:
        lua_pushinteger(s->wr.waiter->co, 1);
        return sock_half_done(&s->wr, 1);
    case CONN_WAIT:
        s->wr.op = OP_CONNECT;   /* the same wait goes on, now for the connect */
        return sock_half_rearm(&s->wr, EV_WRITE);
    case CONN_RESOLVING:
        s->wr.op = OP_RESOLVE;
        return;
    default:
        conn_release_slot(&s->conn);
        return sock_half_fail(&s->wr, err, 0);
    }
}

void sock_connect_ready(lbk_sock *s)
{
    const char *err = NULL;
    ev_io_stop(s->h->loop, &s->wr.io);   /* the descriptor may change (the next address) */
    int status = conn_connect_ready(&s->conn, &err);
    connect_outcome(s, status, err);
}

/* A name was resolved and its first address tried (on the loop). */
static void connected(lbk_conn *c, int status, const char *err)
{
    lbk_sock *s = (lbk_sock *)((char *)c - offsetof(lbk_sock, conn));
    connect_outcome(s, status, err);
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
        if (!*pool || plen == 0 || plen >= SOCK_POOL_KEY_MAX)
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

/* A queued connect's turn (sock_group_leave, inside someone else's call):
 * go on from the loop. */
static void queued_go(lbk_queued *q, lbk_pool_group *g)
{
    lbk_sock *s = (lbk_sock *)((char *)q - offsetof(lbk_sock, conn.queued));
    s->conn.group = g;
    ev_timer_set(&s->kick, 0, 0);
    ev_timer_start(s->h->loop, &s->kick);
}

void sock_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    lbk_sock *s = w->data;
    if (s->wr.op != OP_QUEUED || !s->wr.waiter) {
        conn_release_slot(&s->conn);
        return;
    }
    const char *err = NULL;
    int status = conn_connect(&s->conn, &err);
    connect_outcome(s, status, err);
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
        if (hlen == 0 || hlen >= sizeof s->conn.host) return sock_arg_error(L, "connect", 2, "bad host");
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
    lbk_task *t = sock_task(s, L, "sock:connect");
    sock_close(s);
    conn_target(&s->conn, host, port, pool);
    s->conn.connected = connected;
    sock_attach_to_req(s, t);

    if (s->backlog >= 0) {
        lbk_pool_group *g = sock_pool_group(cosockets_pool(s->conn.cs), s->conn.key);
        if (!g) return sock_push_fail(L, "out of memory");
        s->conn.queued.go = queued_go;
        int size = s->pool_size ? s->pool_size : DEFAULT_POOL_SIZE;
        int rc = sock_group_enter(g, size, s->backlog, &s->conn.queued);
        if (rc < 0) return sock_push_fail(L, "too many waiting connect operations");
        if (rc == 0) return sock_begin_wait(L, t, &s->wr, OP_QUEUED, 0, s->connect_timeout);
        s->conn.group = g;
    }
    const char *err = NULL;
    switch (conn_connect(&s->conn, &err)) {
    case CONN_DONE:
        lua_pushinteger(L, 1);
        return 1;
    case CONN_FAILED:
        conn_release_slot(&s->conn);
        return sock_push_fail(L, err);
    case CONN_WAIT:
        return sock_begin_wait(L, t, &s->wr, OP_CONNECT, EV_WRITE, s->connect_timeout);
    case CONN_RESOLVING:
    default:
        return sock_begin_wait(L, t, &s->wr, OP_RESOLVE, 0, s->connect_timeout);
    }
}
