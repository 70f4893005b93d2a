/* lubeck.channel(name): in-process pub/sub. Waiters are tasks linked into the
 * channel's list; a publish wakes them all with the same payload (a string the
 * Lua side encoded), whatever generation they run in. */
#ifndef LUBECK_CHANNEL_H
#define LUBECK_CHANNEL_H

#include "host.h"

/* Wakes every waiter of name with payload; returns how many. */
int channel_publish(lubeck *h, const char *name, size_t name_len, const char *payload, size_t len);
int channel_waiters(lubeck *h);
/* Wakes every waiter of every channel with nil, reason (lubeck_stop: "closing"). */
void channel_wake_all(lubeck *h, const char *reason);
void channel_open(lua_State *L, lbk_gen *g);   /* adds the functions to the table on top */
void channel_free_all(lubeck *h);

#endif
