/* Channels: in-process pub/sub by name. Waiters are tasks linked into their
 * channel's list; a delivery wakes them all with the same payload (bytes the
 * publisher encoded), whatever generation they run in. With a Redis url the
 * channels also reach other hosts: a host without workers holds that link
 * itself (redis_bus.c); a host with workers has its bus process hold it, and
 * its workers reach each other through the bus (bus.c, which the caller
 * feeds). The Lua face (lubeck.channel) is host/lua/lua_channel.c: it gives
 * the function that hands a payload to a waiting task, so nothing here
 * touches a Lua value. */
#ifndef LUBECK_CHANNEL_H
#define LUBECK_CHANNEL_H

#include <stddef.h>
#include <ev.h>

#include "scheduler.h"

typedef struct lbk_channels lbk_channels;

/* Hands payload to the waiting task t: pushes the values its wait returns on
 * t's coroutine and returns how many (the binding's job). */
typedef int (*channels_push_fn)(lbk_task *t, const char *payload, size_t len);

/* The channels of one host, on loop (where the Redis link runs). NULL: out
 * of memory. */
lbk_channels *channels_new(struct ev_loop *loop);
/* Frees every channel and stops the Redis link; no task may wait any more. */
void channels_free(lbk_channels *ch);

/* Links t as a waiter of name; push is how a payload will reach it. Returns
 * what t waits on, to pass to sched_wait with channels_leave as the undo
 * function; NULL when out of memory (nothing linked). */
void *channels_join(lbk_channels *ch, lbk_task *t, const char *name, size_t len,
                    channels_push_fn push);
/* Unlinks t from the channel it waits on (an lbk_undo_fn: a timeout or a cancel). */
void channels_leave(lbk_task *t);

/* Wakes every waiter of name in this process with payload; returns how many. */
int channels_deliver(lbk_channels *ch, const char *name, size_t name_len, const char *payload, size_t len);
/* The same, after sending it to the other hosts through the Redis link (if any). */
int channels_publish(lbk_channels *ch, const char *name, size_t name_len, const char *payload, size_t len);
/* channels_deliver in the shape of a callback (bus_channel_fn, pg_notify_fn):
 * ud is the lbk_channels. */
void channels_deliver_cb(void *ud, const char *name, size_t name_len, const char *payload, size_t len);
/* Tasks waiting on any channel. */
int channels_waiters(const lbk_channels *ch);
/* Wakes every waiter of every channel with nil, reason (a stop: "closing"). */
void channels_wake_all(lbk_channels *ch, const char *reason);

/* ---- across hosts ---- */

/* The Redis url given on the command line, before the app loads (so it wins
 * over the app's redis option): 0, or -1 with why in err. */
int channels_set_redis(lbk_channels *ch, const char *url, char *err, size_t errlen);
/* The app's redis option: 0 (kept only when no url is set yet: --redis, or a
 * first generation's option, stays), or -1 with why in err for a bad url. */
int channels_offer_redis(lbk_channels *ch, const char *url, char *err, size_t errlen);
/* The url channels cross hosts through, or NULL. */
const char *channels_redis_url(const lbk_channels *ch);
/* A host without workers: starts its own link to that url, if any (another
 * host's publishes are delivered here). 0, or -1 with why in err. */
int channels_start_redis(lbk_channels *ch, char *err, size_t errlen);

#endif
