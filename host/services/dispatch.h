/* The routing core of a reader: the one process that reads a Mongrel2 front
 * and hands each message to a member (a worker of this host, or a host behind
 * `lubeck relay`). It keeps no sockets; the reader (reader.c) feeds it and acts
 * on its answers.
 *
 * - Members join (ready), leave (no new connections; what they hold stays
 *   theirs) and are removed (gone: what they held is reported, to be answered).
 * - A connection with something in flight belongs to the member that holds it:
 *   every later message of it (a pipelined request, a WebSocket frame, the
 *   disconnect notice) goes there, in order. A connection with nothing in
 *   flight goes to the ready member with the fewest messages in flight.
 * - A connection stays known with nothing in flight until its disconnect
 *   notice: Mongrel2's credits notices (download flow control) come after
 *   each write, often once the request has ended, and must reach the member
 *   that wrote (its window and backlog for the connection are there).
 * - Members report each message done; a message's tag (front, epoch, conn id)
 *   names what it was, so the counts stay exact. */
#ifndef LUBECK_DISPATCH_H
#define LUBECK_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#define DISPATCH_MAX_FRONTS 64

/* What a member is handed with each message and sends back when it is done. */
typedef struct dispatch_tag {
    uint32_t conn_id;
    uint16_t front;
    uint16_t epoch;
} dispatch_tag;

/* Set in a done report's front by a member that closed the client's
 * connection itself (an empty reply, a WebSocket close, a cancel): Mongrel2
 * sends no disconnect notice then, so the report ends the connection as a
 * notice would, once nothing of it is in flight. */
#define DISPATCH_TAG_CLOSED 0x8000

typedef enum dispatch_state { MEMBER_FREE, MEMBER_READY, MEMBER_LEAVING } dispatch_state;

typedef struct dispatch_member {
    dispatch_state state;
    char id[64];                 /* the ROUTER identity */
    size_t idlen;
    int pid;                     /* in-host: the worker's pid (0 for a host) */
    int inflight;                /* messages handed and not yet reported done */
    double last_seen;            /* relay: loop time of its last message */
} dispatch_member;

typedef struct dispatch dispatch;

dispatch *dispatch_new(void);
void dispatch_free(dispatch *d);

/* Members are numbered from 0 (an index that stays valid until it is removed). */
int dispatch_member_count(const dispatch *d);   /* slots, free ones included */
dispatch_member *dispatch_member_at(dispatch *d, int m);
int dispatch_find(const dispatch *d, const void *id, size_t idlen);   /* -1: unknown */
int dispatch_find_pid(const dispatch *d, int pid);
/* A new ready member; -1 when out of memory. */
int dispatch_join(dispatch *d, const void *id, size_t idlen, int pid);
void dispatch_leave(dispatch *d, int m);
/* The member is gone. held(ud, front, conn_id, websocket, leaving) runs for each
 * connection it held with something in flight, so that the caller can answer
 * its client; the idle ones it last held are forgotten. */
typedef void (*dispatch_held_fn)(void *ud, int front, uint32_t conn_id, int websocket, int leaving);
void dispatch_remove(dispatch *d, int m, dispatch_held_fn held, void *ud);
int dispatch_ready_count(const dispatch *d);

/* What a message is, for dispatch_route. */
enum {
    DISPATCH_MESSAGE = 0,        /* a request, a WebSocket frame, an upload part */
    DISPATCH_NOTICE = 1,         /* a notice that ends the connection (disconnect) */
    DISPATCH_CREDITS = 2,        /* a credits notice: the connection goes on */
};

/* Chooses the member for one message of (front, conn_id): the owner of the
 * connection, else the least busy ready member. notice (DISPATCH_*): a
 * notice goes to the member that holds or last held the connection, never
 * elsewhere (-1: drop it); a disconnect makes the connection forgotten once
 * everything of it is done. websocket: the message
 * is a WebSocket handshake (its connection then stays a session). Counts the
 * message as in flight and fills *tag. -1 with no ready member. */
int dispatch_route(dispatch *d, int front, uint32_t conn_id, int notice, int websocket, dispatch_tag *tag);
/* A member reports a message done (tag's front may carry DISPATCH_TAG_CLOSED). */
void dispatch_done(dispatch *d, int m, const dispatch_tag *tag);
/* The front reconnected (a new Mongrel2 life): its connections are forgotten
 * and later tags carry a new epoch, so late reports of the old ones only
 * lower their members' counts. */
void dispatch_front_reset(dispatch *d, int front);
/* Connections in the table (for tests and logs). */
size_t dispatch_conn_count(const dispatch *d);

#endif
