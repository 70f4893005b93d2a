/* The inside of a cosocket, shared by the files that make lubeck.tcp():
 * cosocket.c (the object, its waits, send, TLS, options), cosocket_connect.c
 * (connect: addresses, the pool, backlog queues) and cosocket_recv.c (the
 * receive buffer and its patterns). Nothing outside them includes it. */
#ifndef LUBECK_COSOCKET_SOCK_H
#define LUBECK_COSOCKET_SOCK_H

#include <sys/types.h>

#include "cosocket.h"
#include "scheduler.h"
#include "tls.h"

#define SOCK_MT "lubeck.Socket"
#define DEFAULT_POOL_SIZE 30

enum op { OP_NONE, OP_QUEUED, OP_RESOLVE, OP_CONNECT, OP_SEND, OP_RECV, OP_HANDSHAKE };
enum attempt { ATTEMPT_CONNECTED, ATTEMPT_FAILED, ATTEMPT_CONNECTING, ATTEMPT_RESOLVING };
enum recv_kind { RECV_LINE, RECV_ALL, RECV_BYTES, RECV_UNTIL, RECV_ANY };

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
    int fd;
    double connect_timeout, send_timeout, read_timeout;   /* seconds */
    char key[COSOCKET_POOL_KEY_MAX];   /* the pool key: the pool option, or "host:port" */
    int pool_size;               /* connect's pool_size: setkeepalive's default */
    int backlog;                 /* connect's backlog (-1: none): pool_size limits use */
    char host[256];              /* what connect was given ("unix:/path" or a host) */
    int port;
    lbk_pool_group *group;       /* the pool whose slot it holds (with backlog) */
    lbk_queued queued;           /* its place in that pool's queue */
    ev_timer kick;               /* its turn came: the connect goes on from the loop */
    lbk_half rd, wr;
    lbk_tls *tls;                /* after sslhandshake */
    /* send in progress: the string is held by send_ref */
    int send_ref;
    const char *send_data;
    size_t send_len, send_off;
    /* receive buffer: data is buf[off, len) */
    char *buf;
    size_t off, len, cap;
    enum recv_kind recv_kind;
    size_t recv_want;            /* bytes, the max of receiveany, or a sized until's size */
    const char *until_pat;       /* pattern of the running receiveuntil (held by its closure) */
    size_t until_len, until_from;
    lbk_until *until;
    int eof;
    lbk_resolve *resolving;
    struct addrinfo *addrs;      /* a name's addresses, tried in order */
    struct addrinfo *next_addr;
    char server_name[256];       /* for sslhandshake */
    int want_session;            /* sslhandshake's first argument was not false */
    lbk_req *req;                /* owner: closed when it ends */
    struct lbk_sock *req_prev, *req_next;
    int reused;                  /* times taken from the pool */
} lbk_sock;

/* Waits: each half (reader, writer) has at most one waiting coroutine. */
int sock_begin_wait(lua_State *L, lbk_task *t, lbk_half *hf, enum op op, int events,
                    double timeout);
void sock_half_clear(lbk_half *hf);
void sock_half_done(lbk_half *hf, int nvalues);    /* resumes with the values on its stack */
void sock_half_fail(lbk_half *hf, const char *err, int close_it);
void sock_half_rearm(lbk_half *hf, int events);
void sock_attach_to_req(lbk_sock *s, lbk_task *t);

/* Closing: sock_close ends both halves' waits and gives up the pool slot;
 * sock_drop_fd closes the descriptor only (a connect trying the next address). */
void sock_close(lbk_sock *s);
void sock_drop_fd(lbk_sock *s);
void sock_release_slot(lbk_sock *s);
void sock_forget_addrs(lbk_sock *s);

/* Results and misuse: errors name the method, counted as in a method call. */
const char *sock_errno_text(int e);
int sock_push_fail(lua_State *L, const char *err);
int sock_arg_error(lua_State *L, const char *method, int idx, const char *msg);
int sock_arg_type_error(lua_State *L, const char *method, int idx, const char *expected);
lua_Number sock_arg_number(lua_State *L, const char *method, int idx);
lua_Number sock_arg_opt_number(lua_State *L, const char *method, int idx, lua_Number def);
const char *sock_arg_string(lua_State *L, const char *method, int idx, size_t *len);
void sock_arg_table(lua_State *L, const char *method, int idx);
lbk_sock *sock_check(lua_State *L, const char *method);

/* >0 bytes read, 0 end of stream, -1 wait for *events, -2 error (*err). */
ssize_t sock_transport_recv(lbk_sock *s, char *buf, size_t n, int *events, const char **err);

/* cosocket_connect.c */
int sock_l_connect(lua_State *L);
void sock_connect_ready(lbk_sock *s);        /* the writer's readiness during a connect */
void sock_kick_cb(struct ev_loop *loop, ev_timer *w, int revents);   /* a queued connect's turn */

/* cosocket_recv.c */
int sock_l_receive(lua_State *L);
int sock_l_receiveany(lua_State *L);
int sock_l_receiveuntil(lua_State *L);
/* Values pushed on L when the pending receive is satisfied, else 0 (wait for
 * *events); *broken: the caller closes the socket after ending its wait. */
int sock_progress_recv(lbk_sock *s, lua_State *L, int *events, int *broken);

#endif
