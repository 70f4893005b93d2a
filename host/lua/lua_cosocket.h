/* lubeck.tcp() and udp(): the Lua face of cosockets (services/cosocket.h
 * does the bytes). Shared by lua_cosocket.c (the object, its waits, send, the
 * options, a request's sockets), lua_cosocket_connect.c, lua_cosocket_recv.c
 * and lua_tls.c (sslhandshake, sessions, core.tls.add_ca); lua_core.c calls
 * cosocket_open, udp_open_class and tls_open. */
#ifndef LUBECK_LUA_COSOCKET_H
#define LUBECK_LUA_COSOCKET_H

#include "cosocket.h"
#include "host.h"

#define SOCK_MT "lubeck.Socket"
#define DEFAULT_POOL_SIZE 30

/* Adds tcp to the table on top (lubeck.core). */
void cosocket_open(lua_State *L, lbk_gen *g);
/* Replaces the (nested) array of strings and numbers at idx by their
 * concatenation, as send takes them; raises on anything else. */
void cosocket_flatten(lua_State *L, int idx);

enum op { OP_NONE, OP_QUEUED, OP_RESOLVE, OP_CONNECT, OP_SEND, OP_RECV, OP_HANDSHAKE };

/* One direction's wait: the coroutine in it and the readiness it waits for. */
typedef struct lbk_half {
    enum op op;
    lbk_task *waiter;
    int self_ref;                /* keeps the userdata alive while an op is pending */
    ev_io io;
    struct lbk_sock *sock;
} lbk_half;

/* receiveuntil's iterator: the pattern and where a sized read left off. */
typedef struct lbk_until {
    int inclusive;
    int ended;                   /* sized reads: the pattern was consumed, next call → nil */
} lbk_until;

typedef struct lbk_sock {
    lubeck *h;
    lbk_conn conn;               /* the bytes: descriptor, buffer, connect state */
    double connect_timeout, send_timeout, read_timeout;   /* seconds */
    int pool_size;               /* connect's pool_size: setkeepalive's default */
    int backlog;                 /* connect's backlog (-1: none): pool_size limits use */
    ev_timer kick;               /* its turn in a pool's queue came: connect from the loop */
    lbk_half rd, wr;
    int send_ref;                /* the string being sent, while a send waits */
    int want_session;            /* sslhandshake's first argument was not false */
    lbk_held held;               /* its request's: closed when the request ends */
} lbk_sock;

/* Waits: each half (reader, writer) has at most one waiting coroutine. */
int sock_begin_wait(lua_State *L, lbk_task *t, lbk_half *hf, enum op op, int events,
                    double timeout);
void sock_half_clear(lbk_half *hf);
void sock_half_done(lbk_half *hf, int nvalues);    /* resumes with the values on its stack */
void sock_half_fail(lbk_half *hf, const char *err, int close_it);
void sock_half_rearm(lbk_half *hf, int events);
/* The task running on L, as sched_running names it in an error. */
lbk_task *sock_task(lbk_sock *s, lua_State *L, const char *what);
void sock_attach_to_req(lbk_sock *s, lbk_task *t);

/* Ends both halves' waits (their tasks get nil, "closed") and closes the
 * connection. */
void sock_close(lbk_sock *s);

/* Results and misuse: errors name the method, counted as in a method call. */
int sock_push_fail(lua_State *L, const char *err);
int sock_arg_error(lua_State *L, const char *method, int idx, const char *msg);
int sock_arg_type_error(lua_State *L, const char *method, int idx, const char *expected);
lua_Number sock_arg_number(lua_State *L, const char *method, int idx);
lua_Number sock_arg_opt_number(lua_State *L, const char *method, int idx, lua_Number def);
const char *sock_arg_string(lua_State *L, const char *method, int idx, size_t *len);
void sock_arg_table(lua_State *L, const char *method, int idx);
lbk_sock *sock_check(lua_State *L, const char *method);

/* lua_cosocket_connect.c */
int sock_l_connect(lua_State *L);
void sock_connect_ready(lbk_sock *s);        /* the writer's readiness during a connect */
void sock_kick_cb(struct ev_loop *loop, ev_timer *w, int revents);   /* a queued connect's turn */

/* lua_cosocket_recv.c */
int sock_l_receive(lua_State *L);
int sock_l_receiveany(lua_State *L);
int sock_l_receiveuntil(lua_State *L);
/* Runs the pending receive; pushes its values on L and returns their count,
 * or 0 to wait for *events. *broken: the caller closes the socket after
 * ending its own wait. */
int sock_progress_recv(lbk_sock *s, lua_State *L, int *events, int *broken);

/* lua_tls.c */
int sock_l_sslhandshake(lua_State *L);
void sock_handshake_step(lbk_sock *s);       /* the writer's readiness during a handshake */
void tls_open(lua_State *L, lbk_gen *g);     /* the session class; add_ca (core.tls) */

/* lua_udp.c */
void udp_open_class(lua_State *L, lbk_gen *g);   /* the class; udp() (lubeck.core) */

#endif
