/* TCP connections for cosockets at the byte level: connecting (addresses,
 * names resolved off the loop, the keep-alive pool), sending, the receive
 * buffer and its patterns, TLS. Every call returns a status and never
 * blocks; the caller waits for the readiness it is told. Nothing here knows
 * Lua, tasks or requests: lubeck.tcp and ngx.socket.tcp are built on it in
 * host/lua/lua_cosocket*.c. Files: cosocket.c (the service, the stream, send,
 * keep-alive), cosocket_connect.c, cosocket_recv.c, cosocket_until.c,
 * cosocket_resolve.c, cosocket_udp.c; sock_pool.c and tls.c beside them. */
#ifndef LUBECK_COSOCKET_H
#define LUBECK_COSOCKET_H

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <ev.h>

#include "slice.h"
#include "sock_pool.h"
#include "tls.h"

/* ---- the service: what a host's cosockets share ---------------------------- */

typedef struct lbk_cosockets lbk_cosockets;
lbk_cosockets *cosockets_new(struct ev_loop *loop);   /* NULL: out of memory */
/* Closes the idle pooled connections and frees the TLS settings; every
 * connection must be closed first. */
void cosockets_free(lbk_cosockets *cs);
int cosockets_open(const lbk_cosockets *cs);   /* connections open (not pooled) */
lbk_tls_client *cosockets_tls(lbk_cosockets *cs);
lbk_sock_pool *cosockets_pool(lbk_cosockets *cs);
struct ev_loop *cosockets_loop(lbk_cosockets *cs);

/* ---- name lookups (cosocket_resolve.c) --------------------------------------- */

/* getaddrinfo on the offload pool (offload.h); done runs on the loop with the
 * addresses (the callee owns them) or an error message. */
typedef struct lbk_resolve lbk_resolve;
typedef void (*cosocket_resolved_fn)(void *arg, struct addrinfo *addrs, const char *err);
lbk_resolve *cosocket_resolve(struct ev_loop *loop, const char *host, int port,
                              cosocket_resolved_fn done, void *arg);   /* NULL: cannot start */
/* done will not be called; the answer is freed when it comes. */
void cosocket_resolve_cancel(lbk_resolve *q);

/* ---- addresses --------------------------------------------------------------- */

/* host as an address: "unix:/path", an IPv4 or an IPv6 literal (port in
 * network order). 0, or -1 when host is a name (to resolve) or a unix path
 * too long. */
int cosocket_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);

/* ---- a connection ------------------------------------------------------------------ */

/* What a receive takes: a line, all until the end, n bytes, up to a pattern, any. */
enum conn_pattern {
    CONN_PATTERN_LINE, CONN_PATTERN_ALL, CONN_PATTERN_BYTES, CONN_PATTERN_UNTIL, CONN_PATTERN_ANY
};

/* The receive in progress; it survives waits (until's scan resumes at from). */
typedef struct lbk_conn_recv {
    enum conn_pattern kind;
    size_t want;                 /* bytes, the max of receiveany, or a sized until's size */
    const char *pat;             /* until: the pattern (kept alive by the caller) */
    size_t plen, from;
    int inclusive;
    int *ended;                  /* sized until: set once the pattern was consumed */
} lbk_conn_recv;

typedef struct lbk_conn lbk_conn;
/* A connect that had to resolve a name goes on by itself: its outcome, as
 * conn_connect_ready's, comes here (on the loop). */
typedef void (*conn_connected_fn)(lbk_conn *c, int status, const char *err);

struct lbk_conn {
    lbk_cosockets *cs;
    int fd;                      /* -1: closed */
    lbk_tls *tls;                /* after a TLS handshake */
    char key[SOCK_POOL_KEY_MAX]; /* the pool key: the pool option, or "host:port" */
    char host[256];              /* what connect was given ("unix:/path" or a host) */
    int port;
    int reused;                  /* times taken from the pool */
    lbk_pool_group *group;       /* the pool whose slot it holds (with backlog) */
    lbk_queued queued;           /* its place in that pool's queue */
    lbk_resolve *resolving;
    struct addrinfo *addrs;      /* a name's addresses, tried in order */
    struct addrinfo *next_addr;
    conn_connected_fn connected;
    /* the send in progress (the caller keeps data alive) */
    const char *send_data;
    size_t send_len, send_off;
    /* the receive buffer: data is buf[off, len) */
    char *buf;
    size_t off, len, cap;
    int eof;
    lbk_conn_recv recv;
};

void conn_init(lbk_conn *c, lbk_cosockets *cs);
/* Closes it and frees its buffer (it can be reused after conn_init). */
void conn_free(lbk_conn *c);

/* The target of the next connect and its pool key (pool, or "host:port", or
 * the unix path). host is shorter than c->host, pool than SOCK_POOL_KEY_MAX. */
void conn_target(lbk_conn *c, const char *host, int port, const char *pool);

/* Connect statuses: */
enum { CONN_FAILED = -1, CONN_WAIT = 0, CONN_DONE = 1, CONN_RESOLVING = 2 };
/* Starts the connect to the target: CONN_DONE (from the pool, or at once),
 * CONN_WAIT (wait for writability, then conn_connect_ready), CONN_RESOLVING
 * (c->connected will be called) or CONN_FAILED (*err). */
int conn_connect(lbk_conn *c, const char **err);
/* The descriptor became writable during a connect: CONN_DONE, CONN_WAIT (the
 * next address is being tried) or CONN_FAILED (*err, every address failed). */
int conn_connect_ready(lbk_conn *c, const char **err);
/* Gives up the pool slot a connect with backlog took: the next queued
 * connect of that pool gets it. */
void conn_release_slot(lbk_conn *c);
void conn_cancel_resolve(lbk_conn *c);
void conn_forget_addrs(lbk_conn *c);

/* Sends c->send_data from send_off: 1 all sent, 0 wait for *events, -1 error (*err). */
int conn_send(lbk_conn *c, int *events, const char **err);

/* Receive results: */
enum {
    CONN_RECV_WAIT = 0,          /* wait for *events */
    CONN_RECV_DATA,              /* *out: what the receive asked for */
    CONN_RECV_END,               /* a sized until reached its pattern: nil */
    CONN_RECV_CLOSED,            /* the peer closed first: *out is what was left */
    CONN_RECV_BROKEN,            /* an error (*err): *out is what was left; close it */
};
/* Runs c->recv on what is buffered, reading more while it can. *out points
 * into the buffer: valid until the next call on c. */
int conn_recv(lbk_conn *c, slice *out, int *events, const char **err);

/* Starts TLS on the connected descriptor (then tls_handshake(c->tls)):
 * 0, or -1 (*err). */
int conn_tls_start(lbk_conn *c, const char *server_name, int verify,
                   lbk_tls_session *session, const char **err);

/* SOCK_CLEAN when nothing unread waits, in the buffer or the kernel. */
int conn_idle_state(lbk_conn *c);
/* Hands a clean connection to the keep-alive pool (idle seconds, at most size
 * per key): SOCK_CLEAN, and c is closed without closing the descriptor; else
 * SOCK_DIRTY ("connection in dubious state") or SOCK_PEER_CLOSED, and the
 * connection is closed. */
int conn_keepalive(lbk_conn *c, double idle, int size);
/* fd is c's descriptor now (counted as open until conn_drop_fd). */
void conn_adopt_fd(lbk_conn *c, int fd);
/* Closes the descriptor only (a connect trying the next address keeps the rest). */
void conn_drop_fd(lbk_conn *c);
/* Closes it: descriptor, pool slot, a lookup or an address list in progress. */
void conn_close(lbk_conn *c);

/* >0 bytes read, 0 end of stream, -1 wait for *events, -2 error (*err). */
ssize_t conn_transport_recv(lbk_conn *c, char *buf, size_t n, int *events, const char **err);
const char *cosocket_errno_text(int e);

/* ---- receiveuntil's matcher (cosocket_until.c) --------------------------------- */

/* The first occurrence of pat in data at or after from (no match starts
 * before it), or -1; *safe is how many leading bytes cannot be part of a
 * match (all before the match when there is one). */
long cosocket_until_find(const char *data, size_t len, const char *pat, size_t plen, size_t from,
                         size_t *safe);

/* ---- datagrams (cosocket_udp.c), for ngx.socket.udp ----------------------------- */

/* A non-blocking UDP socket connected to host (an address: cosocket_addr):
 * its descriptor, or -1 and *err. */
int udp_open(const char *host, int port, const char **err);
/* 0, or -1 (*err). */
int udp_send(int fd, const char *data, size_t len, const char **err);
/* One datagram of at most n bytes: its length, -1 none yet, -2 error (*err). */
ssize_t udp_recv(int fd, char *buf, size_t n, const char **err);

#endif
