/* The keep-alive pool of TCP connections (a cosocket's setkeepalive) and the
 * per-pool limits on connections in use (connect's backlog), on a libev loop.
 * Plain descriptors and keys: nothing here knows Lua, tasks or requests, so it
 * builds and is tested alone (tests/unit/test_sock_pool.c). sock_pool.c. */
#ifndef LUBECK_SOCK_POOL_H
#define LUBECK_SOCK_POOL_H

#include <ev.h>

/* A pool key: connect's pool option, or "host:port" (or "unix:/path"). */
#define SOCK_POOL_KEY_MAX 512

/* What an idle connection holds: only a clean one is kept or handed out. */
enum { SOCK_CLEAN, SOCK_DIRTY, SOCK_PEER_CLOSED };
/* SOCK_CLEAN, SOCK_DIRTY (bytes waiting to be read) or SOCK_PEER_CLOSED. */
int sock_fd_state(int fd);

typedef struct lbk_sock_pool lbk_sock_pool;

lbk_sock_pool *sock_pool_new(struct ev_loop *loop);   /* NULL: out of memory */
/* Closes every idle connection and forgets the limits (no connect may be
 * queued any more). */
void sock_pool_free(lbk_sock_pool *p);

/* Takes an idle connection of key, newest first: its fd (*reused: times it was
 * taken before, plus one; *tls: the TLS state kept with it, or NULL), or -1.
 * One that went bad while idle is dropped on the way. */
int sock_pool_take(lbk_sock_pool *p, const char *key, int *reused, void **tls);
/* Keeps fd (and tls, freed with free_tls when it is dropped) for idle seconds
 * (0: no limit) under key; with size already idle under key, the oldest is
 * dropped. 0, or -1 when it was not kept: the caller still owns fd and tls. */
int sock_pool_put(lbk_sock_pool *p, const char *key, int fd, int reused, void *tls,
                  void (*free_tls)(void *), double idle, int size);
int sock_pool_idle(const lbk_sock_pool *p, const char *key);   /* how many wait under key */

/* A pool's limit on connections in use (connect's pool_size with backlog):
 * past it, connects queue (at most backlog of them) until a connection in use
 * is closed or pooled. Queued entries are embedded in their owners; go is
 * called (from inside another caller's leave: it must only schedule) when the
 * entry's turn comes, the slot already taken for it. */
typedef struct lbk_pool_group lbk_pool_group;
typedef struct lbk_queued {
    struct lbk_queued *prev, *next;
    lbk_pool_group *group;       /* set while queued */
    void (*go)(struct lbk_queued *q, lbk_pool_group *g);
} lbk_queued;
lbk_pool_group *sock_pool_group(lbk_sock_pool *p, const char *key);   /* NULL: out of memory */
/* 1: a slot is taken; 0: q waits in the queue; -1: the queue is full. */
int sock_group_enter(lbk_pool_group *g, int size, int backlog, lbk_queued *q);
void sock_group_leave(lbk_pool_group *g);   /* frees a slot: the next in line gets it */
void sock_group_dequeue(lbk_queued *q);     /* q stops waiting (timeout, close) */

#endif
