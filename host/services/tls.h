/* TLS clients for cosockets, on OpenSSL (tls.c). The caller owns the
 * descriptor and waits for readiness; these calls never block. No Lua here:
 * its face (sslhandshake, sessions, tls_add_ca) is host/lua/lua_tls.c. */
#ifndef LUBECK_TLS_H
#define LUBECK_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* The client settings every connection of a host shares: the system's CAs
 * and those the app adds. OpenSSL's context is made on first use. */
typedef struct lbk_tls_client lbk_tls_client;
lbk_tls_client *tls_client_new(void);   /* NULL: out of memory */
void tls_client_free(lbk_tls_client *c);
/* Trusts the certificates of a PEM file besides the system's: 0, or -1 with
 * the reason in err. */
int tls_client_add_ca(lbk_tls_client *c, const char *file, char *err, size_t errlen);

/* A resumable session, counted: the connection that made it keeps it up to
 * date (under TLS 1.3 it arrives in a ticket after the handshake). */
typedef struct lbk_tls_session lbk_tls_session;

typedef struct lbk_tls lbk_tls;

/* A client on fd: verifies the peer against the trusted CAs when verify is
 * set, checks and sends server_name (SNI), resumes session when given one;
 * NULL and *err on failure. */
lbk_tls *tls_new(lbk_tls_client *c, int fd, const char *server_name, int verify,
                 lbk_tls_session *session, const char **err);
/* 1 done, 0 wait for *events (EV_READ / EV_WRITE), -1 failed (*err names the cause). */
int tls_handshake(lbk_tls *t, int *events, const char **err);
/* As recv/send: >0 bytes, 0 end of stream (recv), -1 wait for *events, -2 error (*err). */
ssize_t tls_recv(lbk_tls *t, char *buf, size_t n, int *events, const char **err);
ssize_t tls_send(lbk_tls *t, const char *buf, size_t n, int *events, const char **err);
/* SOCK_CLEAN (sock_pool.h) when no application data is waiting (tickets are absorbed). */
int tls_idle_state(lbk_tls *t);
/* A new reference to t's session (release it), or NULL: out of memory. */
lbk_tls_session *tls_session(lbk_tls *t);
void tls_session_release(lbk_tls_session *s);
void tls_free(lbk_tls *t);

#endif
