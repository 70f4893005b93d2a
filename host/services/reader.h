/* The single reader of one or more Mongrel2 fronts: it pulls every message,
 * asks the routing core (dispatch.h) which member takes it, and hands it over
 * a ROUTER socket that its members (DEALER, member.h) connect to. It answers
 * 502 itself, through the front's recv spec, for what a member held when it
 * died. Inside one host it runs in the master's bus process, with the workers
 * as members and the master telling it which worker died; `lubeck relay` runs
 * it beside a Mongrel2, with hosts as members and heartbeats for liveness.
 *
 * The wire between reader and members (ROUTER ↔ DEALER, first part a kind):
 *   member → reader   'H' pid:int32 ready:uint8   hello, also every beat
 *                     'D' tag:8 tag:8 ...          messages done (batched)
 *                     'L'                          leaving: route it nothing new
 *   reader → member   'W' recv specs (';' list)    welcome: where replies go
 *                     'M' tag:8, then the frame    a message from Mongrel2
 *                     'R' sender                   that front restarted: drop its work
 *                     'B'                          bye: nothing more will come */
#ifndef LUBECK_READER_H
#define LUBECK_READER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

typedef struct reader_config {
    const char *send_specs, *recv_specs;   /* ';'-separated, one pair per front */
    const char *listen;                    /* where members connect (bound ROUTER) */
    const char *welcome_recv;              /* recv specs named in the welcome (NULL: recv_specs) */
    int death_fd;                          /* in-host: the master writes dead workers' pids (int32) here; -1: none */
    double member_timeout;                 /* a member silent this long is gone (0: never; in-host) */
    int tcp_heartbeats;                    /* ZeroMQ heartbeats on the member socket (relay) */
    double heartbeat;                      /* ZeroMQ heartbeats toward Mongrel2, seconds (0: none) */
    int quiet;                             /* no join/leave lines (in-host) */
} reader_config;

typedef struct reader reader;

reader *reader_start(struct ev_loop *loop, const reader_config *c, char *err, size_t errlen);
void reader_stop(reader *r);
/* One line on stderr: members (ready), messages in flight, connections known
 * (`kill -USR1` on a relay). */
void reader_report(reader *r);

/* What the reader reads of a frame "SENDER ID PATH LEN:HEADERS...": the
 * sender, the connection id, whether it is a notice (path "@*": 0, or
 * DISPATCH_NOTICE, or DISPATCH_CREDITS for a credits notice) and whether its
 * headers name a WebSocket handshake. 0, or -1 when malformed. */
int reader_peek_frame(const char *p, size_t n, slice *sender, uint32_t *id, int *notice, int *handshake);

#endif
