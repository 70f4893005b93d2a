/* Mongrel2's download flow control (setting download.flow_control=1; see
 * docs/flow-control.md). In that mode Mongrel2 refuses a message, and drops
 * its client, when the connection's queued bytes plus the message would pass
 * 100 KiB (MAX_CREDITS), and it reports every message it has written with a
 * credits notice. This file keeps, per connection, the bytes sent and not yet
 * reported written ("in flight") under that window: a message that does not
 * fit waits in the connection's backlog, in order, cut into pieces no larger
 * than the window, and goes out as credits come back. Senders that can wait
 * (WebSocket sends, streamed writes) watch the backlog and resume once it is
 * empty. A client that reads nothing for send_timeout while data waits for it
 * is closed here (an X ctl cancel), never by Mongrel2's queue. When Mongrel2
 * runs without the setting, requests carry no DOWNLOAD_CREDITS, the window
 * stays 0 and every message goes straight out. */
#ifndef LUBECK_FLOW_H
#define LUBECK_FLOW_H

#include "host.h"

#define FLOW_SEND_TIMEOUT 30.0   /* seconds without credits while data waits: close */
#define FLOW_MONGREL2_WINDOW (100 * 1024)   /* MAX_CREDITS, fixed in Mongrel2 1.12 */

/* Someone waiting for a connection's backlog to empty: fn(ud, 1) when it has,
 * fn(ud, 0) when the connection ended first. Embedded in its owner. */
typedef struct flow_waiter {
    struct flow_waiter *next;
    struct flow_conn *conn;       /* set while watching */
    void (*fn)(void *ud, int open);
    void *ud;
} flow_waiter;

/* A request frame: the first request of a connection carries DOWNLOAD_CREDITS
 * (the window) when Mongrel2 runs with download.flow_control=1. A credits
 * notice that comes first turns the window on too (FLOW_MONGREL2_WINDOW). */
void flow_request_seen(lubeck *h, const m2_request *m);
/* The window in bytes; 0 when Mongrel2 sends no credits (no flow control). */
size_t flow_window(const lubeck *h);

/* One message (a, b and c joined) to one connection; what does not fit the
 * window waits in its backlog. 0, or -1 when out of memory. */
int flow_send(lubeck *h, slice sender, uint32_t id, slice a, slice b, slice c);
/* One message to up to M2_MAX_TARGETS connections (app:deliver): at once to
 * those with room, through the backlog for the others. */
void flow_send_ids(lubeck *h, slice sender, const uint32_t *ids, int n, slice body);
/* Bytes of the connection's backlog (0: nothing waits). */
size_t flow_backlog(lubeck *h, slice sender, uint32_t id);
/* Watches the connection's backlog; w->fn and w->ud are set by the caller.
 * Calls nothing when the backlog is already empty: returns 0 then, else 1. */
int flow_watch(lubeck *h, slice sender, uint32_t id, flow_waiter *w);
void flow_unwatch(lubeck *h, flow_waiter *w);

/* host.c: a credits notice (also one forwarded by another worker): Mongrel2
 * wrote that many bytes to the connection. Returns 1 when this worker sends to
 * that connection, 0 when it is unknown here. */
size_t flow_credits_written(const m2_request *m);
int flow_credit(lubeck *h, slice sender, uint32_t id, size_t written);
/* host.c: Mongrel2 said the connection is gone: its backlog is dropped and
 * its waiters hear 0. */
void flow_gone(lubeck *h, slice sender, uint32_t id);
/* park.c: the Mongrel2 behind that sender restarted or went away: every entry
 * of it is dropped (credits owed by its old life never come) and waiters hear 0. */
void flow_forget_sender(lubeck *h, slice sender);
void flow_free_all(lubeck *h);

#endif
