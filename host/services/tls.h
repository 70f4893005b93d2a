/* TLS for cosockets on OpenSSL (see tls.c). The caller owns the descriptor and
 * waits for readiness; these calls never block. */
#ifndef LUBECK_TLS_H
#define LUBECK_TLS_H

#include <sys/types.h>

#include "host.h"

typedef struct lbk_tls lbk_tls;

void tls_open(lua_State *L, lubeck *h);   /* the session class; tls_add_ca on the table on top */
/* A client on fd: verifies the peer against the system's CAs (and the app's)
 * when verify is set, checks and sends server_name (SNI); NULL and *err on failure. */
lbk_tls *tls_new(lubeck *h, int fd, const char *server_name, int verify, void *session,
                 const char **err);
/* 1 done, 0 wait for *events, -1 failed (*err names the cause). */
int tls_handshake(lbk_tls *t, int *events, const char **err);
/* As recv/send: >0 bytes, 0 end of stream (recv), -1 wait for *events, -2 error (*err). */
ssize_t tls_recv(lbk_tls *t, char *buf, size_t n, int *events, const char **err);
ssize_t tls_send(lbk_tls *t, const char *buf, size_t n, int *events, const char **err);
/* COSOCKET_CLEAN when no application data is waiting (tickets are absorbed). */
int tls_idle_state(lbk_tls *t);
void tls_push_session(lbk_tls *t, lua_State *L);   /* a session for reuse, or true */
void *tls_check_session(lua_State *L, int idx);     /* the session a userdata holds */
void tls_free(lbk_tls *t);
void tls_free_all(lubeck *h);

#endif
