/* lubeck.channel(name): in-process pub/sub. Waiters are tasks linked into the
 * channel's list; a publish wakes them all with the same payload (a string the
 * Lua side encoded), whatever generation they run in. A publish also goes to the
 * host's other workers (bus.c) and, with a Redis url, to other hosts: a host
 * without workers holds that link itself (redis_bus.c); a host with workers has
 * its bus process hold it. */
#ifndef LUBECK_CHANNEL_H
#define LUBECK_CHANNEL_H

#include "host.h"

/* Wakes every waiter of name with payload; returns how many. */
int channel_publish(lubeck *h, const char *name, size_t name_len, const char *payload, size_t len);
int channel_waiters(lubeck *h);
/* Wakes every waiter of every channel with nil, reason (lubeck_stop: "closing"). */
void channel_wake_all(lubeck *h, const char *reason);
void channel_open(lua_State *L, lbk_gen *g);   /* adds the functions to the table on top */
void channel_free_all(lubeck *h);   /* and the Redis link */

/* The Redis url given on the command line, before the app loads (so it wins over
 * the app's redis option): 0, or -1 with why in err. */
int channel_set_redis(lubeck *h, const char *url, char *err, size_t errlen);
/* The url channels cross hosts through (--redis, else the app's), or NULL. */
const char *channel_redis_url(lubeck *h);
/* A host without workers: starts its own link to that url, if any. 0 or -1. */
int channel_start_redis(lubeck *h);

#endif
