/* lubeck.tcp(): non-blocking TCP for handlers (see cosocket.c). */
#ifndef LUBECK_COSOCKET_H
#define LUBECK_COSOCKET_H

#include "host.h"

void cosocket_open(lua_State *L, lbk_gen *g);   /* adds tcp to the table on top */
void cosocket_req_ended(lbk_req *r);            /* closes the request's sockets */
void cosocket_free_all(lubeck *h);              /* the pool and the resolver */

/* cosocket_pool.c: idle connections kept by setkeepalive, by pool key (the
 * connect's pool option, or "host:port"). Only clean connections are kept and
 * handed out: nothing unread, peer not gone. */
#define COSOCKET_POOL_KEY_MAX 512
enum { COSOCKET_CLEAN, COSOCKET_DIRTY, COSOCKET_PEER_CLOSED };
int cosocket_fd_state(int fd);   /* COSOCKET_CLEAN, _DIRTY (bytes waiting) or _PEER_CLOSED */
int cosocket_pool_take(lubeck *h, const char *key, int *reused);   /* fd or -1 */
int cosocket_pool_put(lubeck *h, const char *key, int fd, int reused, double idle, int size);
void cosocket_pool_free(lubeck *h);

#endif
