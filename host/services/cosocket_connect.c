/* Connecting a cosocket: an IP address, a name (resolved off the loop, each
 * of its addresses tried in turn) or "unix:/path"; first from the keep-alive
 * pool by the pool key. Statuses only: the caller waits and wakes its task
 * (host/lua/lua_cosocket_connect.c). */
#define _GNU_SOURCE
#include "cosocket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int cosocket_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (memcmp(host, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t plen = strlen(host + 5);
        if (plen >= sizeof un->sun_path) return -1;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, host + 5, plen);
        *len = sizeof *un;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -1;
}

void conn_target(lbk_conn *c, const char *host, int port, const char *pool)
{
    snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    if (pool) snprintf(c->key, sizeof c->key, "%s", pool);
    else if (memcmp(host, "unix:", 5) == 0) snprintf(c->key, sizeof c->key, "%s", host);
    else snprintf(c->key, sizeof c->key, "%s:%d", host, port);
}

/* Opens the socket and starts connecting: CONN_DONE, CONN_WAIT (in
 * progress: wait for writability) or CONN_FAILED with *err set. */
static int start_connect(lbk_conn *c, const struct sockaddr *addr, socklen_t len, int *err)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { *err = errno; return CONN_FAILED; }
    if (addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    conn_adopt_fd(c, fd);
    if (connect(fd, addr, len) == 0) return CONN_DONE;
    if (errno != EINPROGRESS) {
        *err = errno;
        conn_drop_fd(c);
        return CONN_FAILED;
    }
    return CONN_WAIT;
}

/* Tries the name's remaining addresses in order until one connects or starts
 * connecting; fails with the last error when none is left. */
static int connect_next(lbk_conn *c, int err, const char **errtext)
{
    while (c->next_addr) {
        struct addrinfo *ai = c->next_addr;
        c->next_addr = ai->ai_next;
        int rc = start_connect(c, ai->ai_addr, ai->ai_addrlen, &err);
        if (rc != CONN_FAILED) return rc;
    }
    *errtext = cosocket_errno_text(err ? err : ECONNREFUSED);
    return CONN_FAILED;
}

int conn_connect_ready(lbk_conn *c, const char **err)
{
    int e = 0;
    socklen_t len = sizeof e;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len);
    if (!e) return CONN_DONE;
    conn_drop_fd(c);
    return connect_next(c, e, err);   /* a name may have another address (IPv6 first, then IPv4) */
}

static void resolved(void *arg, struct addrinfo *addrs, const char *err)
{
    lbk_conn *c = arg;
    c->resolving = NULL;
    if (!addrs) return c->connected(c, CONN_FAILED, err);
    c->addrs = c->next_addr = addrs;   /* the connection owns the list now */
    const char *why = NULL;
    int rc = connect_next(c, 0, &why);
    c->connected(c, rc, why);
}

int conn_connect(lbk_conn *c, const char **err)
{
    void *tls = NULL;
    int fd = sock_pool_take(cosockets_pool(c->cs), c->key, &c->reused, &tls);
    if (fd >= 0) {
        conn_adopt_fd(c, fd);
        c->tls = tls;
        return CONN_DONE;
    }
    c->reused = 0;

    struct sockaddr_storage ss;
    socklen_t alen = 0;
    if (cosocket_addr(c->host, c->port, &ss, &alen) == 0) {
        int e = 0, rc = start_connect(c, (struct sockaddr *)&ss, alen, &e);
        if (rc == CONN_FAILED) *err = cosocket_errno_text(e);
        return rc;
    }
    /* A name: getaddrinfo blocks, so it runs off the loop. */
    c->resolving = cosocket_resolve(cosockets_loop(c->cs), c->host, c->port, resolved, c);
    if (!c->resolving) {
        *err = "cannot start the resolver thread";
        return CONN_FAILED;
    }
    return CONN_RESOLVING;
}
