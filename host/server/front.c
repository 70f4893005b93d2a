/* Fronts: the Mongrel2 servers a host is connected to straight, one per
 * --send/--recv pair. Each front has a PULL socket of its own, so the host
 * knows which front every request came through, and a ZeroMQ socket monitor on
 * it that reports when the connection drops. A drop starts a new epoch of that
 * front: Mongrel2 numbers its client connections from a counter that restarts
 * with it, under the same sender UUID, so nothing received in an earlier epoch
 * may ever be answered (the connection id may name another client by now).
 *
 * The receive loop lives here too: ZMQ_FD is edge-triggered, so each PULL is
 * read until a receive finds nothing, and otherwise ZMQ_EVENTS is looked at
 * before the loop blocks (any zmq call on the socket may consume the edge). */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define RECV_BATCH 64            /* messages per wake-up before others get a turn */
#define PULL_RCVHWM 64           /* few queued here, so Mongrel2 spreads the load */

/* ---- receiving -------------------------------------------------------------- */

/* Reads up to RECV_BATCH messages; 1 when more may be pending. */
static int drain_front(lbk_front *f)
{
    lubeck *h = f->h;
    for (int i = 0; i < RECV_BATCH; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, f->pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            if (errno != EAGAIN && errno != EINTR)
                log_error_limited("receiving: %s", zmq_strerror(errno));
            f->drained = errno == EAGAIN;
            return 0;
        }
        host_on_frame(h, f, &msg);
        zmq_msg_close(&msg);
        if (!f->pull) return 0;
    }
    return 1;
}

static void drain_all(lubeck *h)
{
    int more = 0;
    for (int i = 0; i < h->nfronts; i++)
        if (h->fronts[i].pull) more |= drain_front(&h->fronts[i]);
    if (more) ev_idle_start(h->loop, &h->drain_idle);   /* the rest: next iteration */
    else ev_idle_stop(h->loop, &h->drain_idle);
}

static int front_pending(lbk_front *f)
{
    int events = 0;
    size_t len = sizeof events;
    return f->pull && zmq_getsockopt(f->pull, ZMQ_EVENTS, &events, &len) == 0 &&
           (events & ZMQ_POLLIN);
}

static void pull_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    lbk_front *f = w->data;
    if (drain_front(f)) ev_idle_start(loop, &f->h->drain_idle);
}

static void drain_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    drain_all(w->data);
}

/* Before the loop blocks. (Each ZMQ_EVENTS costs ZeroMQ a poll() system call:
 * skipped when a receive has just come back empty, which re-armed the fd.) */
void host_fronts_prepare(lubeck *h)
{
    for (int i = 0; i < h->nfronts; i++) {
        lbk_front *f = &h->fronts[i];
        if (f->drained) f->drained = 0;
        else if (front_pending(f)) ev_idle_start(h->loop, &h->drain_idle);
    }
}

/* ---- the monitor: epochs ---------------------------------------------------------- */

/* The connection to this front dropped: its Mongrel2 died, restarted, or the
 * heartbeats stopped. What is still queued came from the life that ended, and
 * every request and WebSocket session received through it ends unanswered. */
static void front_dropped(lbk_front *f)
{
    lubeck *h = f->h;
    f->epoch++;
    int discarded = 0;
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        int rc = zmq_msg_recv(&msg, f->pull, ZMQ_DONTWAIT);
        zmq_msg_close(&msg);
        if (rc < 0) break;
        discarded++;
    }
    int ended = host_front_ended(h, f);
    log_warn("the connection to %s dropped (Mongrel2 stopped or restarted): %d request(s) and "
             "session(s) received through it end unanswered, %d queued message(s) dropped",
             f->send_spec, ended, discarded);
}

static void read_events(lbk_front *f)
{
    for (;;) {
        zmq_msg_t event, addr;
        zmq_msg_init(&event);
        if (zmq_msg_recv(&event, f->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&event);
            return;   /* read until empty: the edge is armed again */
        }
        zmq_msg_init(&addr);
        zmq_msg_recv(&addr, f->monitor, 0);   /* the endpoint: a second part always follows */
        uint16_t id = 0;
        if (zmq_msg_size(&event) >= sizeof id) memcpy(&id, zmq_msg_data(&event), sizeof id);
        zmq_msg_close(&event);
        zmq_msg_close(&addr);
        if (id == ZMQ_EVENT_DISCONNECTED && f->pull && !f->h->letting_go) front_dropped(f);
    }
}

static void monitor_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    read_events(w->data);
}

static int watch_front(lubeck *h, lbk_front *f)
{
    char addr[96];
    snprintf(addr, sizeof addr, "inproc://lubeck-front-%p-%d", (void *)h, f->index);
    if (zmq_socket_monitor(f->pull, addr, ZMQ_EVENT_DISCONNECTED) != 0) return -1;
    f->monitor = zmq_socket(h->zctx, ZMQ_PAIR);
    if (!f->monitor || zmq_connect(f->monitor, addr) != 0) return -1;
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(f->monitor, ZMQ_FD, &fd, &len) != 0) return -1;
    ev_io_init(&f->monitor_io, monitor_cb, fd, EV_READ);
    f->monitor_io.data = f;
    return 0;
}

/* ---- life cycle -------------------------------------------------------------------- */

/* libzmq 4.3 sends the TTL inside each ping, so the Mongrel2 side drops a host
 * that went silent (a machine that vanished, a stopped process) after the TTL,
 * without any setting in Mongrel2; and this side notices a silent Mongrel2. */
void host_set_heartbeat(lubeck *h, void *sock)
{
    if (h->heartbeat <= 0) return;
    int ivl = (int)(h->heartbeat * 1000), ttl = ivl * 3;
    if (ttl > 6553500) ttl = 6553500;   /* the TTL travels in deciseconds, 16 bits */
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
}

static int open_front(lubeck *h, lbk_front *f, const char *spec)
{
    f->h = h;
    f->send_spec = strdup(spec);
    f->pull = zmq_socket(h->zctx, ZMQ_PULL);
    if (!f->send_spec || !f->pull) {
        host_set_error(h, "cannot make the request socket for %s: %s", spec, zmq_strerror(errno));
        return -1;
    }
    int hwm = PULL_RCVHWM, zero = 0;
    zmq_setsockopt(f->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(f->pull, ZMQ_ROUTING_ID, h->sender_id, strlen(h->sender_id));
    zmq_setsockopt(f->pull, ZMQ_LINGER, &zero, sizeof zero);
    host_set_heartbeat(h, f->pull);
    if (watch_front(h, f) != 0) {
        host_set_error(h, "cannot watch the request socket for %s: %s", spec, zmq_strerror(errno));
        return -1;
    }
    if (zmq_connect(f->pull, spec) != 0) {
        host_set_error(h, "cannot connect the request socket to %s: %s", spec, zmq_strerror(errno));
        return -1;
    }
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(f->pull, ZMQ_FD, &fd, &len) != 0) {
        host_set_error(h, "ZMQ_FD: %s", zmq_strerror(errno));
        return -1;
    }
    ev_io_init(&f->pull_io, pull_cb, fd, EV_READ);
    f->pull_io.data = f;
    return 0;
}

/* One front per endpoint of the ';'-separated send_spec list. */
int host_fronts_open(lubeck *h)
{
    int n = 1;
    for (const char *s = h->send_spec; *s; s++) n += *s == ';';
    h->fronts = calloc((size_t)n, sizeof *h->fronts);
    if (!h->fronts) {
        host_set_error(h, "out of memory");
        return -1;
    }
    ev_idle_init(&h->drain_idle, drain_idle_cb);
    h->drain_idle.data = h;
    char *copy = strdup(h->send_spec), *save = NULL;
    int rc = copy ? 0 : -1;
    for (char *s = copy ? strtok_r(copy, ";", &save) : NULL; s; s = strtok_r(NULL, ";", &save)) {
        lbk_front *f = &h->fronts[h->nfronts];
        f->index = h->nfronts++;
        if ((rc = open_front(h, f, s)) != 0) break;
    }
    free(copy);
    return rc;
}

void host_fronts_start(lubeck *h)
{
    for (int i = 0; i < h->nfronts; i++) {
        ev_io_start(h->loop, &h->fronts[i].pull_io);
        ev_io_start(h->loop, &h->fronts[i].monitor_io);
        /* ZeroMQ signals the fd only after a read came back empty. */
        read_events(&h->fronts[i]);
    }
    ev_idle_start(h->loop, &h->drain_idle);   /* messages may already be queued */
}

/* Lets go of every front: what is queued is read (and handled: answered 503
 * while stopping) until the sockets are empty, and only then are they closed,
 * since ZeroMQ discards whatever is still queued at a disconnect. What
 * Mongrel2 pushes in the moment between the last read and the close is lost:
 * a direct connection has no way to say "stop routing to me" first. */
void host_fronts_close(lubeck *h)
{
    if (!h->fronts) return;
    h->letting_go = 1;
    for (int i = 0; i < h->nfronts; i++) {
        lbk_front *f = &h->fronts[i];
        /* (Bounded: under a flood that never lets the queue empty, it still ends.) */
        for (int rounds = 0; f->pull && rounds < 1000 && (drain_front(f) || front_pending(f)); rounds++) {}
    }
    for (int i = 0; i < h->nfronts; i++) {
        lbk_front *f = &h->fronts[i];
        ev_io_stop(h->loop, &f->pull_io);
        ev_io_stop(h->loop, &f->monitor_io);
        if (f->pull) {
            zmq_socket_monitor(f->pull, NULL, 0);
            zmq_close(f->pull);
        }
        if (f->monitor) zmq_close(f->monitor);
        free(f->send_spec);
    }
    ev_idle_stop(h->loop, &h->drain_idle);
    free(h->fronts);
    h->fronts = NULL;
    h->nfronts = 0;
}
