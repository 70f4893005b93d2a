#include "bus.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"

/* Messages are three parts: a kind byte with the sender's pid, then two
 * payload parts: 'C' (channel name, payload). */
typedef struct bus_header {
    char kind;
    int32_t origin;
} bus_header;

static bus_fn handlers[256];   /* by kind (bus_on) */

void bus_on(char kind, bus_fn fn)
{
    handlers[(unsigned char)kind] = fn;
}

struct lbk_bus {
    struct ev_loop *loop;
    void *pub, *sub;
    void *ud;                    /* handed to each kind's function */
    int delivering;              /* inside drain: a close waits until it returns */
    int closed;
    ev_io io;
    ev_idle more;
    ev_prepare check;
};

static void send3(lbk_bus *b, char kind, const void *p1, size_t len1, const void *p2, size_t len2)
{
    if (!b) return;
    bus_header hd = { kind, (int32_t)getpid() };
    if (zmq_send(b->pub, &hd, sizeof hd, ZMQ_SNDMORE) < 0 || zmq_send(b->pub, p1, len1, ZMQ_SNDMORE) < 0 ||
        zmq_send(b->pub, p2, len2, 0) < 0)
        log_error_limited("bus: send failed: %s", zmq_strerror(errno));
}

void bus_send_channel(lbk_bus *b, const char *name, size_t name_len, const char *payload, size_t len)
{
    send3(b, 'C', name, name_len, payload, len);
}

/* Receives one whole message into parts; returns the part count or -1. */
static int recv_parts(void *sock, zmq_msg_t parts[3])
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < 3; i++) zmq_msg_close(&parts[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < 3) parts[n] = m; else zmq_msg_close(&m);
        n++;
    }
    return n;
}

static void on_bus_message(lbk_bus *b, zmq_msg_t parts[3], int n)
{
    if (n != 3 || zmq_msg_size(&parts[0]) != sizeof(bus_header)) {
        log_error_limited("bus: dropped a malformed message");
        return;
    }
    bus_header hd;
    memcpy(&hd, zmq_msg_data(&parts[0]), sizeof hd);
    if (hd.origin == (int32_t)getpid()) return;   /* done locally already */
    const char *a = zmq_msg_data(&parts[1]), *p2 = zmq_msg_data(&parts[2]);
    size_t alen = zmq_msg_size(&parts[1]), blen = zmq_msg_size(&parts[2]);
    bus_fn fn = handlers[(unsigned char)hd.kind];
    if (fn) fn(b->ud, slice_make(a, alen), slice_make(p2, blen));
}

static void free_bus(lbk_bus *b)
{
    ev_io_stop(b->loop, &b->io);
    ev_idle_stop(b->loop, &b->more);
    ev_prepare_stop(b->loop, &b->check);
    zmq_close(b->pub);
    zmq_close(b->sub);
    free(b);
}

static void drain_bus(lbk_bus *b)
{
    b->delivering = 1;
    for (int i = 0; i < 256 && !b->closed; i++) {
        zmq_msg_t parts[3];
        int n = recv_parts(b->sub, parts);
        if (n < 0) {
            ev_idle_stop(b->loop, &b->more);
            break;
        }
        on_bus_message(b, parts, n);
        for (int k = 0; k < n && k < 3; k++) zmq_msg_close(&parts[k]);
        if (i == 255) ev_idle_start(b->loop, &b->more);
    }
    b->delivering = 0;
    if (b->closed) free_bus(b);   /* a function it called closed it */
}

static void bus_io_cb(struct ev_loop *loop, ev_io *w, int revents) { drain_bus(w->data); }
static void bus_more_cb(struct ev_loop *loop, ev_idle *w, int revents) { drain_bus(w->data); }

/* ZMQ_FD is edge-triggered: look again before blocking. */
static void bus_check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    lbk_bus *b = w->data;
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(b->sub, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN))
        ev_idle_start(loop, &b->more);
}

lbk_bus *bus_connect(struct ev_loop *loop, void *zctx, const char *in_spec, const char *out_spec,
                     void *ud, char *err, size_t errlen)
{
    if (!zctx) {
        snprintf(err, errlen, "bus: no ZeroMQ context");
        return NULL;
    }
    lbk_bus *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "bus: out of memory");
        return NULL;
    }
    b->loop = loop;
    b->ud = ud;
    b->pub = zmq_socket(zctx, ZMQ_PUB);
    b->sub = zmq_socket(zctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(b->pub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(b->pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b->sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b->sub, ZMQ_SUBSCRIBE, "", 0);
    int fd;
    size_t len = sizeof fd;
    if (zmq_connect(b->pub, in_spec) != 0 || zmq_connect(b->sub, out_spec) != 0 ||
        zmq_getsockopt(b->sub, ZMQ_FD, &fd, &len) != 0) {
        snprintf(err, errlen, "bus: %s", zmq_strerror(errno));
        zmq_close(b->pub);
        zmq_close(b->sub);
        free(b);
        return NULL;
    }
    ev_io_init(&b->io, bus_io_cb, fd, EV_READ);
    b->io.data = b;
    ev_idle_init(&b->more, bus_more_cb);
    b->more.data = b;
    ev_prepare_init(&b->check, bus_check_cb);
    b->check.data = b;
    ev_io_start(loop, &b->io);
    ev_prepare_start(loop, &b->check);
    return b;
}

void bus_close(lbk_bus *b)
{
    if (!b) return;
    if (b->delivering) {   /* free it once the drain that called us returns */
        b->closed = 1;
        ev_io_stop(b->loop, &b->io);
        ev_idle_stop(b->loop, &b->more);
        ev_prepare_stop(b->loop, &b->check);
        return;
    }
    free_bus(b);
}

/* ---- the master's forwarder ------------------------------------------------ */

struct bus_forwarder {
    struct ev_loop *loop;
    void *ctx, *xsub, *xpub;
    ev_io in_io, out_io;
    ev_prepare check;
    bus_channel_fn tap;          /* sees the channel messages passing through, or NULL */
    void *tap_ud;
};

/* Hands a whole message that is a channel publish to the tap. */
static void tap_message(bus_forwarder *f, zmq_msg_t parts[3], int n)
{
    bus_header hd;
    if (n != 3 || zmq_msg_size(&parts[0]) != sizeof hd) return;
    memcpy(&hd, zmq_msg_data(&parts[0]), sizeof hd);
    if (hd.kind != 'C') return;
    f->tap(f->tap_ud, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), zmq_msg_data(&parts[2]),
           zmq_msg_size(&parts[2]));
}

/* Moves every pending message (all parts) from one socket to the other; with
 * a tap, keeps a reference to each message's first parts to show it. */
static void forward(bus_forwarder *f, void *from, void *to, int tapped)
{
    zmq_msg_t parts[3];
    int n = 0;
    tapped = tapped && f->tap;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        int more = zmq_msg_more(&m);
        if (tapped && n < 3) {
            zmq_msg_init(&parts[n]);
            zmq_msg_copy(&parts[n], &m);   /* shares the data: no copy */
        }
        n++;
        if (zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0) < 0) zmq_msg_close(&m);
        if (more) continue;
        if (tapped) {
            tap_message(f, parts, n);
            for (int i = 0; i < n && i < 3; i++) zmq_msg_close(&parts[i]);
        }
        n = 0;
    }
    if (tapped)   /* (a message is received whole, so nothing is left half way) */
        for (int i = 0; i < n && i < 3; i++) zmq_msg_close(&parts[i]);
}

static void forward_all(bus_forwarder *f)
{
    forward(f, f->xsub, f->xpub, 1);   /* messages */
    forward(f, f->xpub, f->xsub, 0);   /* subscriptions */
}

void bus_forwarder_tap_channels(bus_forwarder *f, bus_channel_fn fn, void *ud)
{
    f->tap = fn;
    f->tap_ud = ud;
}

void bus_forwarder_send_channel(bus_forwarder *f, const char *name, size_t name_len,
                                const char *payload, size_t len)
{
    bus_header hd = { 'C', (int32_t)getpid() };   /* no worker has this pid: all deliver it */
    if (zmq_send(f->xpub, &hd, sizeof hd, ZMQ_SNDMORE) < 0 || zmq_send(f->xpub, name, name_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(f->xpub, payload, len, 0) < 0)
        log_error_limited("bus: send failed: %s", zmq_strerror(errno));
}

static void fwd_io_cb(struct ev_loop *loop, ev_io *w, int revents) { forward_all(w->data); }

static void fwd_check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    bus_forwarder *f = w->data;
    int events = 0;
    size_t len = sizeof events;
    for (int i = 0; i < 8; i++) {
        int pending = 0;
        if (zmq_getsockopt(f->xsub, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN)) pending = 1;
        if (zmq_getsockopt(f->xpub, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN)) pending = 1;
        if (!pending) return;
        forward_all(f);
    }
}

bus_forwarder *bus_forwarder_start(struct ev_loop *loop, const char *in_spec, const char *out_spec,
                                   char *err, size_t errlen)
{
    bus_forwarder *f = calloc(1, sizeof *f);
    if (!f) { snprintf(err, errlen, "out of memory"); return NULL; }
    f->loop = loop;
    f->ctx = zmq_ctx_new();
    f->xsub = zmq_socket(f->ctx, ZMQ_XSUB);
    f->xpub = zmq_socket(f->ctx, ZMQ_XPUB);
    int zero = 0, fd_in, fd_out;
    size_t len = sizeof fd_in;
    zmq_setsockopt(f->xpub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(f->xsub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->xpub, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->xsub, in_spec) != 0 || zmq_bind(f->xpub, out_spec) != 0 ||
        zmq_getsockopt(f->xsub, ZMQ_FD, &fd_in, &len) != 0 ||
        zmq_getsockopt(f->xpub, ZMQ_FD, &fd_out, &len) != 0) {
        snprintf(err, errlen, "bus: cannot bind %s / %s: %s", in_spec, out_spec, zmq_strerror(errno));
        zmq_close(f->xsub);
        zmq_close(f->xpub);
        zmq_ctx_term(f->ctx);
        free(f);
        return NULL;
    }
    ev_io_init(&f->in_io, fwd_io_cb, fd_in, EV_READ);
    ev_io_init(&f->out_io, fwd_io_cb, fd_out, EV_READ);
    ev_prepare_init(&f->check, fwd_check_cb);
    f->in_io.data = f->out_io.data = f->check.data = f;
    ev_io_start(loop, &f->in_io);
    ev_io_start(loop, &f->out_io);
    ev_prepare_start(loop, &f->check);
    return f;
}

void bus_forwarder_stop(bus_forwarder *f)
{
    if (!f) return;
    ev_io_stop(f->loop, &f->in_io);
    ev_io_stop(f->loop, &f->out_io);
    ev_prepare_stop(f->loop, &f->check);
    zmq_close(f->xsub);
    zmq_close(f->xpub);
    zmq_ctx_term(f->ctx);
    free(f);
}
