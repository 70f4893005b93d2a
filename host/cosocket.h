/* lubeck.tcp(): non-blocking TCP for handlers (see cosocket.c). */
#ifndef LUBECK_COSOCKET_H
#define LUBECK_COSOCKET_H

#include "host.h"

void cosocket_open(lua_State *L, lbk_gen *g);   /* adds tcp to the table on top */
void cosocket_req_ended(lbk_req *r);            /* closes the request's sockets */
void cosocket_free_all(lubeck *h);              /* the pool and the resolver */

#endif
