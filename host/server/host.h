/* The server's internals, shared by the files that make up one lubeck
 * instance: host.c (life cycle, receive, dispatch), front.c (the sockets to
 * each Mongrel2, their epochs), park.c, respond.c, upload.c, websocket.c,
 * flow.c, services.c; and read by the Lua bindings above (host/lua/). The
 * scheduler and generations below it are in host/runtime/. */
#ifndef LUBECK_HOST_H
#define LUBECK_HOST_H

#include <stdint.h>
#include <zmq.h>
#include <ev.h>
#include <lua.h>
#include <lauxlib.h>

#include "lubeck.h"
#include "m2.h"
#include "router.h"
#include "paths.h"
#include "gen.h"
#include "scheduler.h"

typedef struct lbk_req lbk_req;

/* One request from Mongrel2, from receipt until its handler's coroutine ends.
 * It owns the zmq message its slices point into. Lua names it by a handle
 * (serial << 24 | index) so a stale handle is refused instead of hitting a reused
 * slot. */
struct lbk_req {
    uint32_t index, serial;
    int live;
    zmq_msg_t msg;
    m2_request m2;
    lbk_gen *gen;
    lbk_task *task;              /* the handler's coroutine; NULL once it has ended */
    lbk_task *tasks;             /* all its coroutines: the handler's and spawned ones */
    struct lbk_held *held;       /* what it holds (its cosockets): released when it ends */
    int ntasks;                  /* the request lives until the last one ends */
    double started;              /* loop time at receipt */
    unsigned method_bit;
    int status;                  /* for the access log */
    size_t body_bytes;
    unsigned head_sent : 1;      /* a status line has gone out */
    unsigned done : 1;           /* the response is complete: later writes are dropped */
    unsigned streaming : 1;      /* a streamed response is in progress */
    unsigned stream_raw : 1;     /* ... to HTTP/1.0: unframed bytes, ended by the close */
    unsigned is_head : 1;        /* HEAD request: bodies are not sent */
    unsigned keep_alive : 1;     /* the client connection stays open after the reply */
    unsigned parked : 1;         /* in the conn map and the deadline list */
    unsigned conn_closed : 1;    /* this host closed the client's connection: no disconnect notice follows */
    int front;                   /* the front it came through (front.c), -1: none */
    unsigned front_epoch;        /* that front's epoch at receipt */
    const char *cancelled;       /* "closed" or "timeout" once cancelled, else NULL */
    lbk_req *conn_next;          /* conn map chain; free list link when not live */
    lbk_req *dl_prev, *dl_next;  /* deadline list, ordered by receipt */
    double deadline;
    char *upload_path;           /* a checked Mongrel2 upload (real path): unlinked when the request ends */
    struct lbk_ws_conn *ws;      /* websocket.c: the connection this request is the session of */
    double pace_start;           /* streaming: the current pacing window (lua_core.c) */
    int pace_frames;
    int reader_link;             /* member.c: 1 + the reader link it came on (0: straight from Mongrel2) */
    uint64_t reader_tag;         /* ... and the tag to report when it ends */
};

/* Something a request holds that must go when the request ends (a cosocket):
 * the layer that made it links it in (host_req_hold) and says how to let go
 * of it; the server calls release when the request ends or is abandoned, and
 * release unlinks it (host_req_unhold). req_held.c. */
typedef struct lbk_held {
    struct lbk_held *prev, *next;
    lbk_req *req;                /* NULL: held by no request */
    void (*release)(struct lbk_held *held);
} lbk_held;
void host_req_hold(lbk_req *r, lbk_held *held);   /* moves it from its former request */
void host_req_unhold(lbk_held *held);
void host_req_release_held(lbk_req *r);

typedef struct lbk_native {
    char *name;
    lua_CFunction fn;
} lbk_native;

/* front.c: one Mongrel2 a host is connected to straight (a --send spec). */
typedef struct lbk_front {
    lubeck *h;
    int index;
    char *send_spec;
    void *pull;                  /* its requests */
    void *monitor;               /* reports when the connection drops */
    ev_io pull_io, monitor_io;
    unsigned epoch;              /* one more at each drop: older requests are never answered */
    char sender[64];             /* the Mongrel2 sender UUID last seen through it */
    size_t sender_len;
    int drained;                 /* this loop iteration's last receive found nothing */
} lbk_front;

/* Where replies go: Mongrel2's PUB socket, or a test client's capture. */
typedef void (*lbk_send_fn)(lubeck *h, const void *frame, size_t len, void *ud);

struct lubeck {
    struct ev_loop *loop;
    char *app, *send_spec, *recv_spec;
    char sender_id[64];          /* the PULL socket's identity */
    int debug;
    void *zctx, *pub;
    lbk_front *fronts;           /* front.c: one per send spec */
    int nfronts;
    int letting_go;              /* the fronts are being closed */
    double heartbeat;            /* ZeroMQ heartbeat interval in seconds (TTL 3x); 0: none */
    ev_prepare prepare;          /* checks ZMQ_EVENTS before the loop blocks */
    ev_timer log_timer;          /* flushes the access log a moment after a line */
    ev_idle drain_idle;          /* keeps receiving while messages are pending */
    lbk_gen *gen;                /* the generation new requests go to */
    lbk_req **reqs;
    uint32_t nreqs;
    lbk_req *free_reqs;
    int inflight;
    int started, stopping;
    lbk_sched sched;             /* the coroutines of every generation (scheduler.c) */
    struct lbk_park *park;       /* park.c: parked requests by connection and deadline */
    struct lbk_member *member;   /* member.c: requests come from readers; NULL: from Mongrel2 */
    struct lbk_bus *bus;         /* to the other workers (bus.c); NULL when alone */
    struct shared_zone *shared;  /* lubeck.shared's memory (shared.c) */
    int own_shared;              /* made by this host (else by the master) */
    struct lbk_channels *channels;   /* channel.c: waiters by name, the Redis link */
    struct lbk_cosockets *cosockets;   /* cosocket.c: keep-alive pool, TLS settings */
    struct lbk_pg *pg;           /* pg.c: its pool and LISTEN connections (NOTIFYs to channels) */
    lbk_native *natives;
    int nnatives;
    int quiet;                   /* no access log (the in-process test client) */
    int checking;                /* `lubeck check`: also compile every template */
    int max_inflight;            /* more requests in flight: 503 + Retry-After (0: no limit) */
    int max_headers;             /* more headers: 431 */
    size_t max_body;             /* a larger inline body: 413 */
    char probe_token[40];        /* serve's readiness probe carries it: answered 204 here */
    lbk_send_fn send_fn;
    void *send_ud;
    char lua_dir[1024];
    char err[512];
    char *upload_dir;            /* real path of Mongrel2's upload.temp_store folder; NULL: uploads refused */
    char *upload_chroot;         /* real path of Mongrel2's chroot, or NULL: its paths are real */
    struct lbk_websockets *websockets;   /* websocket.c's connections */
    struct lbk_flows *flows;     /* flow.c: Mongrel2's download flow control */
};

/* host.c: replies. Each returns 0, or -1 when the request can no longer be
 * answered (already complete, or cancelled): the bytes are then dropped. */
struct reply_spec;
int host_respond(lubeck *h, lbk_req *r, struct reply_spec *spec, slice body);
int host_stream_start(lubeck *h, lbk_req *r, struct reply_spec *spec);
int host_stream_write(lubeck *h, lbk_req *r, slice data);
int host_stream_end(lubeck *h, lbk_req *r);
void host_close_conn(lubeck *h, lbk_req *r);
/* One frame to up to M2_MAX_TARGETS connections of a Mongrel2 server, within
 * each one's flow-control window (flow.c). */
void host_send_ids(lubeck *h, slice sender, const uint32_t *ids, int n, slice body);
/* respond.c: straight to Mongrel2, past flow control (flow.c decides when):
 * a message of the parts a, b, c to the ids; a whole prebuilt frame. */
void host_send_now(lubeck *h, slice sender, const uint32_t *ids, int n, slice a, slice b, slice c);
void host_send_frame(lubeck *h, slice frame);
/* Fills the parts of a reply_spec that follow from the request (version, time,
 * keep-alive). */
void host_reply_defaults(lubeck *h, lbk_req *r, struct reply_spec *spec);

/* respond.c: a refusal or probe answer decided in C before any Lua runs;
 * frees the request slot. */
void host_answer(lubeck *h, lbk_req *r, int status, slice body, const slice *headers, int nheaders);

/* park.c */
int host_park_init(lubeck *h);   /* 0, or -1: out of memory */
void host_park_free(lubeck *h);   /* stops its timer, frees its tables */
uint32_t host_parked(const lubeck *h);   /* requests in the conn map */
void host_unpark(lubeck *h, lbk_req *r);
/* Silently ends every request and WebSocket session whose Mongrel2 sender UUID
 * is sender: nothing is sent for them afterwards (their connection ids may
 * name other clients of a restarted Mongrel2); their coroutines are woken with
 * nil, "closed" as for a disconnect, and on_finish runs. For a reader that
 * sees the front's reconnect itself and hands requests on (the master). */
void host_front_reset(lubeck *h, slice sender);
/* The same for what was received through front f before its current epoch;
 * returns how many requests it ended. */
int host_front_ended(lubeck *h, const lbk_front *f);

/* front.c */
int host_fronts_open(lubeck *h);
void host_fronts_start(lubeck *h);
void host_fronts_prepare(lubeck *h);
/* Reads what is queued (each frame handled), then closes every front. */
void host_fronts_close(lubeck *h);
void host_set_heartbeat(lubeck *h, void *sock);

/* upload.c */
int host_is_upload_start(const m2_request *m);
/* NULL when the upload-done file is acceptable (r->upload_path set), else why not. */
const char *host_upload_accept(lubeck *h, lbk_req *r);

/* host.c */
void host_uuid(char out[37]);   /* a random (version 4) UUID */
void host_req_free(lubeck *h, lbk_req *r);
lbk_req *host_req_from_handle(lubeck *h, double handle);
double host_req_handle(const lbk_req *r);
void host_send(lubeck *h, const void *frame, size_t len);
/* Adds a task to a request (the handler's or a spawned one). */
void host_req_add_task(lbk_req *r, lbk_task *t);
/* park.c: makes r findable by its connection and its deadline (its first wait). */
void host_park(lubeck *h, lbk_req *r);
/* Without sockets: loads the app and sends replies to send_fn (lubeck.test). */
int host_start_local(lubeck *h, lbk_send_fn send_fn, void *ud);
/* A frame handed by a reader (member.c) on link, to report done with tag. */
void host_receive(lubeck *h, zmq_msg_t *msg, int link, uint64_t tag);
/* Handles one frame as if Mongrel2 had sent it. */
void host_inject(lubeck *h, const void *frame, size_t len);
/* front.c: a frame received through front f (NULL: injected). */
void host_on_frame(lubeck *h, lbk_front *f, zmq_msg_t *msg);
/* At the end of a drain: answers what is still running 503 (a stream that
 * started is closed instead); nothing more is sent for them. */
void host_answer_unfinished(lubeck *h);

/* A worker uses its master's lubeck.shared zone (before lubeck_start). */
void host_use_shared_zone(lubeck *h, struct shared_zone *z);

/* Cancels the parked requests of a Mongrel2 connection (it went away). */
void host_cancel_conn(lubeck *h, slice sender, uint32_t conn_id);
/* Takes r off the deadline list for good (a WebSocket session, r->ws set). */
void host_clear_deadline(lubeck *h, lbk_req *r);

/* Loads the app again into a new generation; new requests go to it, running ones
 * finish on the old. On failure the old one keeps serving. 0 or -1. */
int host_reload(lubeck *h);
void host_set_error(lubeck *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* gen.c */
lbk_gen *gen_load(lubeck *h, const char *app_dir, char *err, size_t errlen);
void gen_release(lbk_gen *g);   /* retire; closes once no coroutine is left */

/* lua_core.c */
/* Registers a userdata metatable: methods through __index, gc (also the
 * idempotent close) as __gc, an optional __tostring. */
void host_lua_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                    lua_CFunction tostring);
int luaopen_lubeck_core_for(lua_State *L, lbk_gen *g);
/* lua_model.c: adds compile, validate and json_check to the table on top (core.model) */
void model_open(lua_State *L, lbk_gen *g);
/* upload.c: where Mongrel2 writes async uploads (its upload.temp_store folder,
 * a real path); only files inside it are handed to handlers. m2_chroot (or
 * NULL): the folder a Mongrel2 running as root chroots into, which the paths
 * it names are inside. 0, or -1 if a folder does not resolve. */
int host_set_upload_dir(lubeck *h, const char *dir, const char *m2_chroot);

#endif
