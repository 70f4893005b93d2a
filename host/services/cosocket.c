/* The cosocket service and a connection's stream: the descriptor (plain, or
 * TLS after a handshake), send, closing, and handing a clean connection to
 * the keep-alive pool. Connecting is cosocket_connect.c, receiving
 * cosocket_recv.c; the Lua face is host/lua/lua_cosocket.c. */
#define _GNU_SOURCE
#include "cosocket.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lbk_cosockets {
    struct ev_loop *loop;
    lbk_sock_pool *pool;         /* idle keep-alive connections, limits per pool */
    lbk_tls_client *tls;         /* the TLS settings every connection shares */
    int open;                    /* connections with a descriptor (lubeck.stats) */
};

lbk_cosockets *cosockets_new(struct ev_loop *loop)
{
    lbk_cosockets *cs = calloc(1, sizeof *cs);
    if (!cs) return NULL;
    cs->loop = loop;
    cs->pool = sock_pool_new(loop);
    cs->tls = tls_client_new();
    if (!cs->pool || !cs->tls) {
        cosockets_free(cs);
        return NULL;
    }
    return cs;
}

void cosockets_free(lbk_cosockets *cs)
{
    if (!cs) return;
    sock_pool_free(cs->pool);   /* first: pooled connections hold TLS state */
    tls_client_free(cs->tls);
    free(cs);
}

int cosockets_open(const lbk_cosockets *cs)
{
    return cs ? cs->open : 0;
}

lbk_tls_client *cosockets_tls(lbk_cosockets *cs)
{
    return cs->tls;
}

lbk_sock_pool *cosockets_pool(lbk_cosockets *cs)
{
    return cs->pool;
}

struct ev_loop *cosockets_loop(lbk_cosockets *cs)
{
    return cs->loop;
}

/* ---- a connection --------------------------------------------------------------- */

void conn_init(lbk_conn *c, lbk_cosockets *cs)
{
    memset(c, 0, sizeof *c);
    c->cs = cs;
    c->fd = -1;
}

void conn_free(lbk_conn *c)
{
    conn_close(c);
    free(c->buf);
    c->buf = NULL;
    c->off = c->len = c->cap = 0;
}

const char *cosocket_errno_text(int e)
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

void conn_adopt_fd(lbk_conn *c, int fd)
{
    c->fd = fd;
    c->cs->open++;
}

void conn_drop_fd(lbk_conn *c)
{
    if (c->fd < 0) return;
    if (c->tls) {
        tls_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    c->cs->open--;
    c->off = c->len = 0;
    c->eof = 0;
}

void conn_release_slot(lbk_conn *c)
{
    lbk_pool_group *g = c->group;
    if (!g) return;
    c->group = NULL;
    sock_group_leave(g);
}

void conn_cancel_resolve(lbk_conn *c)
{
    if (!c->resolving) return;
    cosocket_resolve_cancel(c->resolving);
    c->resolving = NULL;
}

void conn_forget_addrs(lbk_conn *c)
{
    if (c->addrs) freeaddrinfo(c->addrs);
    c->addrs = c->next_addr = NULL;
}

void conn_close(lbk_conn *c)
{
    conn_cancel_resolve(c);
    conn_forget_addrs(c);
    sock_group_dequeue(&c->queued);
    conn_release_slot(c);
    conn_drop_fd(c);
}

/* ---- the transport: plain, or TLS after the handshake ------------------------------ */

ssize_t conn_transport_recv(lbk_conn *c, char *buf, size_t n, int *events, const char **err)
{
    if (c->tls) return tls_recv(c->tls, buf, n, events, err);
    for (;;) {
        ssize_t got = recv(c->fd, buf, n, 0);
        if (got >= 0) return got;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { *events = EV_READ; return -1; }
        *err = cosocket_errno_text(errno);
        return -2;
    }
}

static ssize_t transport_send(lbk_conn *c, const char *buf, size_t n, int *events,
                              const char **err)
{
    if (c->tls) return tls_send(c->tls, buf, n, events, err);
    for (;;) {
        ssize_t put = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (put >= 0) return put;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) { *events = EV_WRITE; return -1; }
        *err = cosocket_errno_text(errno);
        return -2;
    }
}

int conn_send(lbk_conn *c, int *events, const char **err)
{
    while (c->send_off < c->send_len) {
        ssize_t n = transport_send(c, c->send_data + c->send_off, c->send_len - c->send_off,
                                   events, err);
        if (n > 0) { c->send_off += (size_t)n; continue; }
        if (n == -1) return 0;
        if (n == 0) *err = "closed";
        return -1;
    }
    return 1;
}

int conn_tls_start(lbk_conn *c, const char *server_name, int verify,
                   lbk_tls_session *session, const char **err)
{
    if (c->len > c->off) {
        *err = "unread data before the TLS handshake";
        return -1;
    }
    c->tls = tls_new(c->cs->tls, c->fd, server_name, verify, session, err);
    return c->tls ? 0 : -1;
}

/* ---- keep-alive ------------------------------------------------------------------------ */

int conn_idle_state(lbk_conn *c)
{
    if (c->eof) return SOCK_PEER_CLOSED;
    if (c->len > c->off) return SOCK_DIRTY;
    return c->tls ? tls_idle_state(c->tls) : sock_fd_state(c->fd);
}

static void tls_free_cb(void *tls) { tls_free(tls); }

int conn_keepalive(lbk_conn *c, double idle, int size)
{
    /* Only a clean connection goes back: bytes still unread (in our buffer or
     * in the kernel's) would be read by the next user as its own reply. */
    int state = conn_idle_state(c);
    if (state != SOCK_CLEAN) {
        conn_close(c);
        return state;
    }
    int fd = c->fd;
    lbk_tls *tls = c->tls;
    c->fd = -1;
    c->tls = NULL;
    c->cs->open--;
    conn_release_slot(c);
    if (sock_pool_put(c->cs->pool, c->key, fd, c->reused, tls, tls_free_cb, idle, size) != 0) {
        if (tls) tls_free(tls);
        close(fd);
    }
    return SOCK_CLEAN;
}
