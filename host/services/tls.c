/* TLS clients for cosockets, on OpenSSL. One SSL_CTX per client (a host has
 * one), made on first use: the system's CAs as OpenSSL finds them
 * (SSL_CERT_FILE / SSL_CERT_DIR honoured), plus any the app adds
 * (lubeck.app{ tls = { ca = "file.pem" } }).
 * Everything is non-blocking: the cosocket waits for what OpenSSL asks. A
 * failed verification is reported by its cause (expired, self-signed, name
 * mismatch), the way a user would look for it. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sock_pool.h"

struct lbk_tls_client {
    SSL_CTX *ctx;                /* NULL until first used */
};

/* The session a handshake hands out, shared by the connection and whoever
 * holds it (a Lua value): under TLS 1.3 the resumable session comes in a
 * ticket after the handshake, so the connection updates it as tickets arrive. */
struct lbk_tls_session {
    int refs;
    SSL_SESSION *sess;
};

struct lbk_tls {
    SSL *ssl;
    int verify;
    lbk_tls_session *session;    /* handed out (tls_session), or NULL */
    char err[256];               /* the last failure, as tls_* report it */
};

void tls_session_release(lbk_tls_session *holder)
{
    if (!holder || --holder->refs > 0) return;
    if (holder->sess) SSL_SESSION_free(holder->sess);
    free(holder);
}

static int app_data_index = -1;

/* OpenSSL's new-session callback: a ticket (or the TLS 1.2 session) arrived. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    lbk_tls *t = SSL_get_ex_data(ssl, app_data_index);
    if (!t) return 0;
    if (!t->session) {
        t->session = calloc(1, sizeof *t->session);
        if (!t->session) return 0;
        t->session->refs = 1;
    }
    if (t->session->sess) SSL_SESSION_free(t->session->sess);
    t->session->sess = sess;   /* returning 1: the reference is ours */
    return 1;
}

lbk_tls_client *tls_client_new(void)
{
    return calloc(1, sizeof(lbk_tls_client));
}

static SSL_CTX *client_ctx(lbk_tls_client *c, const char **err)
{
    if (c->ctx) return c->ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) goto error;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A peer that closes without close_notify reads as an ordinary end of
     * stream (as a plain socket's would), not as an error. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) goto error;
    if (app_data_index < 0) app_data_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
    c->ctx = ctx;
    return ctx;
error:
    if (ctx) SSL_CTX_free(ctx);
    ERR_clear_error();
    *err = "cannot set up TLS (OpenSSL)";
    return NULL;
}

int tls_client_add_ca(lbk_tls_client *c, const char *file, char *err, size_t errlen)
{
    const char *why = NULL;
    SSL_CTX *ctx = client_ctx(c, &why);
    if (!ctx) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
        unsigned long e = ERR_get_error();
        ERR_clear_error();
        const char *reason = e ? ERR_reason_error_string(e) : NULL;
        snprintf(err, errlen, "%s: cannot load CA certificates (%s)", file,
                 reason ? reason : "unknown error");
        return -1;
    }
    return 0;
}

void tls_client_free(lbk_tls_client *c)
{
    if (!c) return;
    if (c->ctx) SSL_CTX_free(c->ctx);
    free(c);
}

static int is_ip(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

lbk_tls *tls_new(lbk_tls_client *c, int fd, const char *server_name, int verify,
                 lbk_tls_session *session, const char **err)
{
    SSL_CTX *ctx = client_ctx(c, err);
    if (!ctx) return NULL;
    lbk_tls *t = calloc(1, sizeof *t);
    if (!t || !(t->ssl = SSL_new(ctx))) goto error;
    t->verify = verify;
    SSL_set_ex_data(t->ssl, app_data_index, t);
    if (SSL_set_fd(t->ssl, fd) != 1) goto error;
    if (server_name && *server_name) {
        if (is_ip(server_name)) {
            if (verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name) != 1)
                goto error;
        } else {
            if (SSL_set_tlsext_host_name(t->ssl, server_name) != 1) goto error;
            if (verify && SSL_set1_host(t->ssl, server_name) != 1) goto error;
        }
    }
    SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (session && session->sess) SSL_set_session(t->ssl, session->sess);
    SSL_set_connect_state(t->ssl);
    return t;
error:
    if (t && t->ssl) SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    *err = "cannot start TLS (OpenSSL)";
    return NULL;
}

/* Names why an OpenSSL call failed, in t->err: the certificate's problem when
 * verification failed, else OpenSSL's reason. */
static const char *failure(lbk_tls *t, int rc, const char *what)
{
    int e = SSL_get_error(t->ssl, rc);
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long ossl = ERR_peek_error();
    if (t->verify && vr != X509_V_OK) {
        snprintf(t->err, sizeof t->err, "%s: certificate verify failed (%s)", what,
                 X509_verify_cert_error_string(vr));
    } else if (ossl) {
        const char *reason = ERR_reason_error_string(ossl);
        snprintf(t->err, sizeof t->err, "%s: %s", what, reason ? reason : "TLS error");
    } else if (e == SSL_ERROR_SYSCALL && errno) {
        snprintf(t->err, sizeof t->err, "%s: %s", what, strerror(errno));
    } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
        snprintf(t->err, sizeof t->err, "%s: closed", what);
    } else {
        snprintf(t->err, sizeof t->err, "%s: TLS error %d", what, e);
    }
    ERR_clear_error();
    return t->err;
}

static int wants(lbk_tls *t, int rc, int *events)
{
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ: *events = EV_READ; return 1;
    case SSL_ERROR_WANT_WRITE: *events = EV_WRITE; return 1;
    default: return 0;
    }
}

int tls_handshake(lbk_tls *t, int *events, const char **err)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) return 1;
    if (wants(t, rc, events)) return 0;
    *err = failure(t, rc, "handshake failed");
    return -1;
}

ssize_t tls_recv(lbk_tls *t, char *buf, size_t n, int *events, const char **err)
{
    ERR_clear_error();
    size_t got = 0;
    int rc = SSL_read_ex(t->ssl, buf, n, &got);
    if (rc == 1) return (ssize_t)got;
    if (wants(t, rc, events)) return -1;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    *err = failure(t, rc, "read failed");
    return -2;
}

ssize_t tls_send(lbk_tls *t, const char *buf, size_t n, int *events, const char **err)
{
    ERR_clear_error();
    size_t put = 0;
    int rc = SSL_write_ex(t->ssl, buf, n, &put);
    if (rc == 1) return (ssize_t)put;
    if (wants(t, rc, events)) return -1;
    *err = failure(t, rc, "write failed");
    return -2;
}

int tls_idle_state(lbk_tls *t)
{
    if (SSL_pending(t->ssl) > 0) return SOCK_DIRTY;
    /* Let OpenSSL take in what has arrived: session tickets are not data. */
    ERR_clear_error();
    char c;
    size_t got = 0;
    int rc = SSL_peek_ex(t->ssl, &c, 1, &got);
    if (rc == 1) return SOCK_DIRTY;
    int e = SSL_get_error(t->ssl, rc);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) return sock_fd_state(SSL_get_fd(t->ssl));
    return SOCK_PEER_CLOSED;
}

void tls_free(lbk_tls *t)
{
    if (!t) return;
    SSL_set_quiet_shutdown(t->ssl, 1);   /* never waits: the socket closes next */
    SSL_shutdown(t->ssl);
    SSL_free(t->ssl);
    ERR_clear_error();
    tls_session_release(t->session);
    free(t);
}

/* ---- sessions, for sslhandshake(reused_session) ---------------------------- */

lbk_tls_session *tls_session(lbk_tls *t)
{
    if (!t->session) {   /* no ticket yet: the session as it stands, updated later */
        t->session = calloc(1, sizeof *t->session);
        if (!t->session) return NULL;
        t->session->refs = 1;
        t->session->sess = SSL_get1_session(t->ssl);
    }
    t->session->refs++;
    return t->session;
}
