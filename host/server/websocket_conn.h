/* The insides of a WebSocket connection, shared by websocket.c (the protocol:
 * frames, pacing, the connection table) and lua_websocket.c (its Lua side). */
#ifndef LUBECK_WEBSOCKET_CONN_H
#define LUBECK_WEBSOCKET_CONN_H

#include "websocket.h"
#include "flow.h"

/* Pacing by time, only when Mongrel2 runs without download.flow_control
 * (otherwise the credit window of flow.c paces every connection). */
#define WS_PACE_WINDOW 0.002             /* seconds */
#define WS_PACE_FRAMES 8                 /* half of Mongrel2's per-connection queue */
#define WS_PACE_BYTES (256 * 1024)
#define WS_MAX_WAITING 64                /* frames waiting for the window: then 1008 */
#define WS_MAX_WAITING_BYTES (8 * 1024 * 1024)
#define WS_INBOX_MAX 1024                /* messages not yet taken by the session: then 1008 */
#define WS_INBOX_MAX_BYTES (32 * 1024 * 1024)
#define WS_MAX_MESSAGE (16 * 1024 * 1024)   /* a longer client message: 1009 */
#define WS_CLOSE_WAIT 2.0                /* after our close frame, the client has this long */
#define WS_MAX_CONTROL 125
#define WS_MIN_BUCKETS 256

typedef struct ws_msg {
    struct ws_msg *next;
    int op;                      /* WS_OP_TEXT, WS_OP_BINARY or WS_OP_CLOSE */
    int code;                    /* close code */
    size_t len;
    char data[];
} ws_msg;

/* A frame waiting for the pacing window; its task (if any) resumes once it left. */
typedef struct ws_pending {
    struct ws_pending *next;
    lbk_task *task;
    size_t len;
    char frame[];
} ws_pending;

typedef struct lbk_ws_conn {
    struct lbk_ws_conn *next;    /* hash chain */
    lubeck *h;
    lbk_req *req;                /* the session request; the sender points into it */
    slice sender;
    uint32_t id;
    int registered;
    ws_msg *in_head, *in_tail;
    int in_count;
    size_t in_bytes;
    lbk_task *reader;            /* the session, waiting in ws_receive */
    ws_pending *out_head, *out_tail;
    int out_count;
    size_t out_bytes;
    double win_start;
    int win_frames;
    size_t win_bytes;
    ev_timer pace;               /* without flow control: the next window */
    flow_waiter room;            /* with flow control: the backlog emptied */
    ev_timer close_wait;
    int close_code;              /* what our close frame said */
    char close_reason[WS_MAX_CONTROL + 1];
    unsigned closing : 1;        /* our close frame is out (or queued): no more data */
    unsigned closed : 1;         /* the empty frame is out, or the client is gone */
} ws_conn;

struct lbk_websockets {
    ws_conn **buckets;
    uint32_t mask, count;
};

/* The protocol's pieces the Lua side calls (each described where websocket.c
 * defines it): the connection table, framing and pacing, closing. */
ws_conn *ws_find(lubeck *h, slice sender, uint32_t id);
void ws_unregister(lubeck *h, ws_conn *c);
int ws_register(lubeck *h, ws_conn *c);
char *ws_build_frame(int op, const char *p, size_t n, size_t *len);
void ws_emit(ws_conn *c, const char *frame, size_t len);
void ws_emit_frame(ws_conn *c, int op, const char *p, size_t n);
int ws_fits_window(ws_conn *c, size_t len);
void ws_count_frame(ws_conn *c, size_t len);
void ws_close_now(ws_conn *c);
void ws_fail(ws_conn *c, int code, const char *reason);
void ws_pace_cb(struct ev_loop *loop, ev_timer *w, int revents);
ws_pending *ws_queue_frame(ws_conn *c, char *frame, size_t len, lbk_task *t);
void ws_undo_send(lbk_task *t);
int ws_push_values(lua_State *L, int op, int code, const char *p, size_t n);
int ws_close_code_ok(int code);
void ws_deliver(ws_conn *c, unsigned flags, const char *p, size_t n);
void ws_close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents);
void ws_start_close(ws_conn *c, int code, const char *reason, size_t n);

#endif
