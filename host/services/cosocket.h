/* lubeck.tcp(): non-blocking TCP for handlers (see cosocket.c), and the parts
 * it is built from. */
#ifndef LUBECK_COSOCKET_H
#define LUBECK_COSOCKET_H

#include <netdb.h>

#include "host.h"

void cosocket_open(lua_State *L, lbk_gen *g);   /* adds tcp to the table on top */
void cosocket_req_ended(lbk_req *r);            /* closes the request's sockets */
void cosocket_free_all(lubeck *h);              /* the pool and the resolver */
/* Replaces the (nested) array of strings and numbers at idx by their
 * concatenation, as send takes them; raises on anything else. */
void cosocket_flatten(lua_State *L, int idx);

/* cosocket_udp.c: udp(), the datagram cosocket (ngx.socket.udp). */
void cosocket_udp_open(lua_State *L, lbk_gen *g);

/* cosocket_pool.c: idle connections kept by setkeepalive, by pool key (the
 * connect's pool option, or "host:port"). Only clean connections are kept and
 * handed out: nothing unread, peer not gone. */
#define COSOCKET_POOL_KEY_MAX 512
enum { COSOCKET_CLEAN, COSOCKET_DIRTY, COSOCKET_PEER_CLOSED };
int cosocket_fd_state(int fd);   /* COSOCKET_CLEAN, _DIRTY (bytes waiting) or _PEER_CLOSED */
/* Takes an idle connection: its fd (and *reused, *tls its TLS state or NULL), or -1. */
int cosocket_pool_take(lubeck *h, const char *key, int *reused, void **tls);
/* Keeps fd (and tls, freed with free_tls when dropped) for idle seconds. */
int cosocket_pool_put(lubeck *h, const char *key, int fd, int reused, void *tls,
                      void (*free_tls)(void *), double idle, int size);
void cosocket_pool_free(lubeck *h);

/* A pool's limit on connections in use (connect's pool_size with backlog):
 * past it, connects queue (at most backlog of them) until a connection in use
 * is closed or pooled. Queued entries are embedded in their sockets; go is
 * called (from inside another task's call: it must only schedule) when the
 * entry's turn comes, the slot already taken for it. */
typedef struct lbk_pool_group lbk_pool_group;
typedef struct lbk_queued {
    struct lbk_queued *prev, *next;
    lbk_pool_group *group;       /* set while queued */
    void (*go)(struct lbk_queued *q, lbk_pool_group *g);
} lbk_queued;
lbk_pool_group *cosocket_group(lubeck *h, const char *key);   /* NULL: out of memory */
/* 1: a slot is taken; 0: q waits in the queue; -1: the queue is full. */
int cosocket_group_enter(lbk_pool_group *g, int size, int backlog, lbk_queued *q);
void cosocket_group_leave(lbk_pool_group *g);   /* frees a slot: the next in line gets it */
void cosocket_group_dequeue(lbk_queued *q);     /* q stops waiting (timeout, close) */

/* cosocket_resolve.c: getaddrinfo on a helper thread; done runs on the loop
 * with the addresses (the callee owns them) or an error message. */
typedef struct lbk_resolve lbk_resolve;
typedef void (*cosocket_resolved_fn)(void *arg, struct addrinfo *addrs, const char *err);
lbk_resolve *cosocket_resolve(lubeck *h, const char *host, int port, cosocket_resolved_fn done,
                              void *arg);
void cosocket_resolve_cancel(lbk_resolve *q);   /* done will not be called */
void cosocket_resolver_free(lubeck *h);

/* cosocket_until.c: the first occurrence of pat in data at or after from (no
 * match starts before it), or -1; *safe is how many leading bytes cannot be
 * part of a match (all before the match when there is one). */
long cosocket_until_find(const char *data, size_t len, const char *pat, size_t plen, size_t from,
                         size_t *safe);

#endif
