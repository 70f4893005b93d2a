#define _GNU_SOURCE   /* memmem */
#include "reader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "dispatch.h"
#include "m2.h"

#define FRONT_BATCH 256          /* messages per front per turn, so members' reports get theirs */
/* A credits notice (one after every reply Mongrel2 writes) waits up to
 * CREDITS_DELAY for the next message to its member and goes with it: alone,
 * it costs a wake-up of the member (and of both ZeroMQ I/O threads) for a
 * message that only moves a flow window. Order per member is kept: waiting
 * notices go first. */
#define CREDITS_DELAY 0.001
#define CREDITS_WAITING 64
#define BEAT_CHECK 0.25
#define MAX_SENDER 128

typedef struct front {
    struct reader *r;
    int index;
    int more;                    /* stopped at the batch limit: more may be waiting */
    void *pull;
    void *monitor;               /* PAIR receiving the PULL's connect/disconnect events */
    int connects;                /* CONNECTED events seen: the second one is a new Mongrel2 */
    char sender[MAX_SENDER];     /* the front's sender UUID, from its messages */
    size_t sender_len;
    ev_io io, monitor_io;
} front;

/* A credits notice routed to member and not sent yet. */
typedef struct waiting_credit {
    int member;
    dispatch_tag tag;
    zmq_msg_t frame;
} waiting_credit;

/* Connections to answer after a member is gone, grouped when sent. */
typedef struct held_conn {
    int front;
    uint32_t id;
    int websocket, leaving;
} held_conn;

struct reader {
    struct ev_loop *loop;
    reader_config c;
    char *welcome;
    void *ctx, *router, *pub;
    front fronts[DISPATCH_MAX_FRONTS];
    int nfronts;
    dispatch *d;
    ev_io router_io, death_io;
    void *router_monitor;        /* PAIR: a member's connection closed */
    ev_io router_monitor_io;
    ev_timer probe;              /* probes again shortly after a close (its pipe may still be going) */
    int probes_left;
    int router_more;             /* stopped at the batch limit */
    int router_sent;             /* sent since it was last drained: its fd edge may be spent */
    int started;                 /* the first idle pass has looked at every socket */
    ev_idle more;
    ev_prepare check;
    ev_timer beat;
    held_conn *held;
    size_t nheld, held_cap;
    waiting_credit credits[CREDITS_WAITING];
    int ncredits;
    ev_timer credits_timer;      /* sends what still waits CREDITS_DELAY after the first */
};

static void say(reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lubeck: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void reader_report(reader *r)
{
    int members = 0, inflight = 0;
    for (int m = 0; m < dispatch_member_count(r->d); m++) {
        const dispatch_member *mb = dispatch_member_at(r->d, m);
        if (!mb) continue;
        members++;
        inflight += mb->inflight;
    }
    say(r, "reader: %d member(s), %d ready, %d message(s) in flight, %zu connection(s) known",
        members, dispatch_ready_count(r->d), inflight, dispatch_conn_count(r->d));
}

/* ---- answering what a gone member held ------------------------------------------ */

static void collect_held(void *ud, int front, uint32_t conn_id, int websocket, int leaving)
{
    reader *r = ud;
    if (r->nheld == r->held_cap) {
        size_t cap = r->held_cap ? r->held_cap * 2 : 256;
        held_conn *grown = realloc(r->held, cap * sizeof *grown);
        if (!grown) return;
        r->held = grown;
        r->held_cap = cap;
    }
    r->held[r->nheld++] = (held_conn){ front, conn_id, websocket, leaving };
}

static void send_to_ids(reader *r, int f, const uint32_t *ids, int n, const char *body, size_t blen)
{
    front *fr = &r->fronts[f];
    slice sender = { fr->sender, fr->sender_len };
    size_t pre = m2_reply_prefix_size(sender, ids, n);
    if (!pre) return;
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, pre + blen) != 0) return;
    char *p = zmq_msg_data(&msg);
    m2_reply_prefix(p, sender, ids, n);
    memcpy(p + pre, body, blen);
    if (zmq_msg_send(&msg, r->pub, 0) < 0) zmq_msg_close(&msg);
}

static const char BAD_GATEWAY[] =
    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
    "Connection: close\r\n\r\nBad Gateway\n";
static const char UNAVAILABLE[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
    "Retry-After: 1\r\nConnection: close\r\n\r\nService Unavailable\n";

/* Each held connection gets 502 (503 with Retry-After from a member that was
 * leaving), then the empty frame that closes it; a WebSocket only the close. */
static void answer_held(reader *r)
{
    uint32_t ids[M2_MAX_TARGETS];
    for (int f = 0; f < r->nfronts; f++) {
        for (int kind = 0; kind < 3; kind++) {   /* 502, 503, WebSocket */
            int n = 0;
            for (size_t i = 0; i <= r->nheld; i++) {
                int flush = i == r->nheld || n == M2_MAX_TARGETS;
                if (flush && n > 0) {
                    if (kind == 0) send_to_ids(r, f, ids, n, BAD_GATEWAY, sizeof BAD_GATEWAY - 1);
                    if (kind == 1) send_to_ids(r, f, ids, n, UNAVAILABLE, sizeof UNAVAILABLE - 1);
                    send_to_ids(r, f, ids, n, "", 0);
                    n = 0;
                }
                if (i == r->nheld) break;
                held_conn *h = &r->held[i];
                int k = h->websocket ? 2 : h->leaving ? 1 : 0;
                if (h->front == f && k == kind) ids[n++] = h->id;
            }
        }
    }
    r->nheld = 0;
}

static void drop_credits(reader *r, int m);

static void member_gone(reader *r, int m, const char *why)
{
    dispatch_member *mb = dispatch_member_at(r->d, m);
    if (!mb) return;
    drop_credits(r, m);
    int held_before = (int)r->nheld;
    char who[96];
    if (mb->pid && r->c.death_fd >= 0) snprintf(who, sizeof who, "worker (pid %d)", mb->pid);
    else snprintf(who, sizeof who, "host %.*s", (int)mb->idlen, mb->id);
    dispatch_remove(r->d, m, collect_held, r);
    int n = (int)r->nheld - held_before;
    answer_held(r);
    if (n > 0 || !r->c.quiet) say(r, "%s %s: answered %d of its connection(s) at once", who, why, n);
}

/* ---- talking to members ------------------------------------------------------------ */

static int send_credits(reader *r, int m, int *failed);

static int send_member(reader *r, int m, const void *a, size_t alen, zmq_msg_t *frame)
{
    dispatch_member *mb = dispatch_member_at(r->d, m);
    if (!mb) return -1;
    if (r->ncredits && send_credits(r, m, NULL) != 0) return -1;
    r->router_sent = 1;
    if (zmq_send(r->router, mb->id, mb->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    if (zmq_send(r->router, a, alen, (frame ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) return -1;
    if (frame && zmq_msg_send(frame, r->router, ZMQ_DONTWAIT) < 0) return -1;
    return 0;
}

static int send_message(reader *r, int m, const dispatch_tag *tag, zmq_msg_t *frame)
{
    char head[1 + sizeof *tag];
    head[0] = 'M';
    memcpy(head + 1, tag, sizeof *tag);
    return send_member(r, m, head, sizeof head, frame);
}

/* Sends the credits notices waiting for member m (every member: m < 0), in
 * order. -1 when one could not be sent, with its member in *failed. */
static int send_credits(reader *r, int m, int *failed)
{
    int kept = 0, rc = 0;
    int n = r->ncredits;
    r->ncredits = 0;   /* (send_message comes back through send_member: nothing waits now) */
    for (int i = 0; i < n; i++) {
        waiting_credit *w = &r->credits[i];
        if (m >= 0 && w->member != m) {
            r->credits[kept++] = *w;
            continue;
        }
        if (send_message(r, w->member, &w->tag, &w->frame) != 0) {
            rc = -1;
            if (failed) *failed = w->member;
        }
        zmq_msg_close(&w->frame);
    }
    r->ncredits = kept;
    if (!kept) ev_timer_stop(r->loop, &r->credits_timer);
    return rc;
}

/* Member m is gone (its index may be reused): what waited for it is dropped. */
static void drop_credits(reader *r, int m)
{
    int kept = 0;
    for (int i = 0; i < r->ncredits; i++) {
        if (r->credits[i].member != m) r->credits[kept++] = r->credits[i];
        else zmq_msg_close(&r->credits[i].frame);
    }
    r->ncredits = kept;
    if (!kept) ev_timer_stop(r->loop, &r->credits_timer);
}

static void send_to_id(reader *r, const void *id, size_t idlen, const void *a, size_t alen)
{
    r->router_sent = 1;
    if (zmq_send(r->router, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(r->router, a, alen, ZMQ_DONTWAIT);
}

static void bye_if_drained(reader *r, int m)
{
    dispatch_member *mb = dispatch_member_at(r->d, m);
    if (!mb || mb->state != MEMBER_LEAVING || mb->inflight > 0) return;
    send_member(r, m, "B", 1, NULL);
    if (!r->c.quiet) say(r, "host %.*s left", (int)mb->idlen, mb->id);
    dispatch_remove(r->d, m, NULL, NULL);
}

static void on_member_message(reader *r, const char *id, size_t idlen, const char *p, size_t n)
{
    if (n == 0) return;
    int m = dispatch_find(r->d, id, idlen);
    dispatch_member *mb = m >= 0 ? dispatch_member_at(r->d, m) : NULL;
    if (mb) mb->last_seen = ev_now(r->loop);
    switch (p[0]) {
    case 'H': {
        if (n < 6) return;
        int32_t pid;
        memcpy(&pid, p + 1, sizeof pid);
        int ready = p[5] != 0;
        if (mb || !ready) {   /* a beat, or a host still connecting its replies */
            if (!mb) send_to_id(r, id, idlen, r->welcome, strlen(r->welcome));
            return;
        }
        m = dispatch_join(r->d, id, idlen, pid);
        if (m < 0) return;
        for (int f = 0; f < r->nfronts; f++) r->fronts[f].more = 1;   /* read what waited for a member */
        ev_idle_start(r->loop, &r->more);
        dispatch_member_at(r->d, m)->last_seen = ev_now(r->loop);
        send_member(r, m, r->welcome, strlen(r->welcome), NULL);
        if (!r->c.quiet) say(r, "host %.*s joined", (int)idlen, id);
        return;
    }
    case 'D':
        if (!mb) return;   /* a report from before this reader knew it: nothing counted */
        for (size_t off = 1; off + sizeof(dispatch_tag) <= n; off += sizeof(dispatch_tag)) {
            dispatch_tag t;
            memcpy(&t, p + off, sizeof t);
            dispatch_done(r->d, m, &t);
        }
        bye_if_drained(r, m);
        return;
    case 'L':
        if (!mb) {
            send_to_id(r, id, idlen, "B", 1);
            return;
        }
        dispatch_leave(r->d, m);
        bye_if_drained(r, m);
        return;
    }
}

static void probe_members(reader *r)
{
    for (int m = 0; m < dispatch_member_count(r->d); m++)
        if (dispatch_member_at(r->d, m) && send_member(r, m, "P", 1, NULL) != 0)
            member_gone(r, m, "disconnected");
}

static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    reader *r = w->data;
    probe_members(r);
    if (--r->probes_left <= 0) ev_timer_stop(loop, w);
}

/* A member's connection closed (a host that died, a worker's ipc pipe):
 * ZeroMQ does not say whose, but a send to a member whose pipe is gone fails
 * at once (ROUTER_MANDATORY), which finds it without waiting for its beats. */
static void router_monitor_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    reader *r = w->data;
    int closed = 0;
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, r->router_monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&ev);
            zmq_msg_recv(&ev, r->router_monitor, 0);
            zmq_msg_close(&ev);
        }
        closed = 1;
    }
    if (!closed) return;
    probe_members(r);
    r->probes_left = 5;
    ev_timer_again(loop, &r->probe);
}

static int drain_router(reader *r)
{
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, r->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return 0;
        }
        zmq_msg_init(&body);
        if (zmq_msg_more(&id) && zmq_msg_recv(&body, r->router, ZMQ_DONTWAIT) >= 0)
            on_member_message(r, zmq_msg_data(&id), zmq_msg_size(&id), zmq_msg_data(&body),
                              zmq_msg_size(&body));
        while (zmq_msg_more(&body)) {   /* (no kind has more parts: skip them) */
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, r->router, ZMQ_DONTWAIT) < 0) break;
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    return 1;
}

/* ---- reading the fronts --------------------------------------------------------------- */

int reader_peek_frame(const char *p, size_t n, slice *sender, uint32_t *id, int *notice, int *handshake)
{
    const char *end = p + n, *sp = memchr(p, ' ', n);
    if (!sp || sp == p) return -1;
    *sender = (slice){ p, (size_t)(sp - p) };
    const char *q = sp + 1;
    uint64_t v = 0;
    if (q >= end || *q < '0' || *q > '9') return -1;
    while (q < end && *q >= '0' && *q <= '9') {
        v = v * 10 + (uint64_t)(*q++ - '0');
        if (v > UINT32_MAX) return -1;
    }
    if (q >= end || *q != ' ') return -1;
    *id = (uint32_t)v;
    const char *path = ++q;
    while (q < end && *q != ' ') q++;
    if (q >= end) return -1;
    *notice = q - path == 2 && path[0] == '@' && path[1] == '*';
    size_t hlen = 0;
    for (q++; q < end && *q >= '0' && *q <= '9' && hlen < ((size_t)1 << 40); q++) hlen = hlen * 10 + (size_t)(*q - '0');
    if (q >= end || *q != ':') return -1;
    q++;
    if (hlen > (size_t)(end - q)) hlen = (size_t)(end - q);
    static const char HS[] = "WEBSOCKET_HANDSHAKE";
    *handshake = !*notice && memmem(q, hlen, HS, sizeof HS - 1) != NULL;
    /* A credits notice's body is {"type":"credits",...}: it must reach the
     * connection's writer and does not end the connection. */
    static const char CREDITS[] = "\"credits\"";
    if (*notice && memmem(q, (size_t)(end - q), CREDITS, sizeof CREDITS - 1))
        *notice = DISPATCH_CREDITS;
    return 0;
}

static void on_front_message(reader *r, int f, zmq_msg_t *msg)
{
    slice sender;
    uint32_t id;
    int notice, handshake;
    if (reader_peek_frame(zmq_msg_data(msg), zmq_msg_size(msg), &sender, &id, &notice, &handshake) != 0) {
        say(r, "dropped a malformed frame of %zu bytes from %s", zmq_msg_size(msg), "a front");
        return;
    }
    front *fr = &r->fronts[f];
    if (sender.n < sizeof fr->sender && (sender.n != fr->sender_len || memcmp(sender.p, fr->sender, sender.n))) {
        memcpy(fr->sender, sender.p, sender.n);
        fr->sender_len = sender.n;
    }
    dispatch_tag tag;
    int m = dispatch_route(r->d, f, id, notice, handshake, &tag);
    if (m < 0) return;   /* a notice nobody needs (no member: not read at all) */
    if (notice == DISPATCH_CREDITS && r->ncredits < CREDITS_WAITING) {
        waiting_credit *w = &r->credits[r->ncredits++];
        w->member = m;
        w->tag = tag;
        zmq_msg_init(&w->frame);
        zmq_msg_move(&w->frame, msg);
        if (!ev_is_active(&r->credits_timer)) {
            ev_now_update(r->loop);   /* (the loop's time may be a busy turn old) */
            ev_timer_set(&r->credits_timer, CREDITS_DELAY, 0);
            ev_timer_start(r->loop, &r->credits_timer);
        }
        return;
    }
    if (send_message(r, m, &tag, msg) != 0) member_gone(r, m, "cannot be reached");
}

static void credits_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    reader *r = w->data;
    int failed = -1;
    if (send_credits(r, -1, &failed) != 0) member_gone(r, failed, "cannot be reached");
}

static int drain_front(reader *r, int f)
{
    for (int i = 0; i < FRONT_BATCH; i++) {
        if (dispatch_ready_count(r->d) == 0) return 0;   /* Mongrel2 keeps it until a member joins */
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, r->fronts[f].pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return 0;
        }
        on_front_message(r, f, &msg);
        zmq_msg_close(&msg);
    }
    return 1;
}

/* A second CONNECTED on a front's socket is a new Mongrel2 life (its
 * connection ids start again): forget the old one's connections and tell
 * every member to drop what it holds from it. */
static void drain_monitor(reader *r, int f)
{
    front *fr = &r->fronts[f];
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, fr->monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2) memcpy(&event, zmq_msg_data(&ev), 2);
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev)) zmq_msg_recv(&addr, fr->monitor, 0);
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (event != ZMQ_EVENT_CONNECTED || fr->connects++ == 0) continue;
        dispatch_front_reset(r->d, f);
        say(r, "front %d reconnected (Mongrel2 restarted?): its earlier requests are dropped", f);
        if (!fr->sender_len) continue;
        char msg[1 + MAX_SENDER];
        msg[0] = 'R';
        memcpy(msg + 1, fr->sender, fr->sender_len);
        for (int m = 0; m < dispatch_member_count(r->d); m++)
            if (dispatch_member_at(r->d, m)) send_member(r, m, msg, 1 + fr->sender_len, NULL);
    }
}

static int pending(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

/* Each socket is drained when its fd fires, and again from the idle watcher
 * while one stopped at its batch limit. A receive that comes back empty
 * re-arms the fd (ZMQ_FD is edge-triggered); only the ROUTER, which is also
 * sent on, needs a look at ZMQ_EVENTS before the loop blocks. */
static void pump_router(reader *r)
{
    r->router_sent = 0;
    r->router_more = drain_router(r);
}

static void pump_front(front *fr)
{
    fr->more = drain_front(fr->r, fr->index);
}

static void update_idle(reader *r)
{
    int more = r->router_more;
    for (int f = 0; f < r->nfronts; f++) more |= r->fronts[f].more;
    if (more) ev_idle_start(r->loop, &r->more);
    else ev_idle_stop(r->loop, &r->more);
}

static void router_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    pump_router(w->data);
    update_idle(w->data);
}

static void front_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    front *fr = w->data;
    pump_front(fr);
    update_idle(fr->r);
}

static void monitor_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    front *fr = w->data;
    drain_monitor(fr->r, fr->index);
}

static void more_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
    reader *r = w->data;
    if (!r->started) {   /* setting sockets up may have spent an edge */
        r->started = 1;
        for (int f = 0; f < r->nfronts; f++) drain_monitor(r, f);
        if (r->router_monitor) router_monitor_cb(loop, &r->router_monitor_io, 0);
    }
    if (r->router_more) pump_router(r);
    for (int f = 0; f < r->nfronts; f++)
        if (r->fronts[f].more) pump_front(&r->fronts[f]);
    update_idle(r);
}

static void check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    reader *r = w->data;
    if (r->router_sent && !r->router_more) {
        r->router_sent = 0;
        if (pending(r->router)) {
            r->router_more = 1;
            ev_idle_start(loop, &r->more);
        }
    }
}

static void death_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    reader *r = w->data;
    int32_t pids[64];
    ssize_t n = read(w->fd, pids, sizeof pids);
    if (n == 0) {   /* the master is gone */
        ev_io_stop(loop, w);
        return;
    }
    for (ssize_t i = 0; i + (ssize_t)sizeof(int32_t) <= n; i += (ssize_t)sizeof(int32_t)) {
        int m = dispatch_find_pid(r->d, pids[i / (ssize_t)sizeof(int32_t)]);
        if (m >= 0) member_gone(r, m, "died");
    }
}

static void beat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    reader *r = w->data;
    /* The monitors' fds were seen to miss an event now and then: look at
     * them here too (a reconnect is then noticed within BEAT_CHECK). */
    for (int f = 0; f < r->nfronts; f++) drain_monitor(r, f);
    if (r->router_monitor) router_monitor_cb(loop, &r->router_monitor_io, 0);
    if (r->c.member_timeout <= 0) return;
    double now = ev_now(loop);
    for (int m = 0; m < dispatch_member_count(r->d); m++) {
        dispatch_member *mb = dispatch_member_at(r->d, m);
        if (mb && now - mb->last_seen > r->c.member_timeout) {
            char why[64];
            snprintf(why, sizeof why, "was silent for %.1fs", now - mb->last_seen);
            member_gone(r, m, why);
        }
    }
}

/* ---- life cycle -------------------------------------------------------------------------- */

static int split_specs(const char *list, char out[][256], int max)
{
    int n = 0;
    const char *p = list;
    while (p && *p && n < max) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (len >= 256) return -1;
        memcpy(out[n], p, len);
        out[n++][len] = 0;
        p = semi ? semi + 1 : NULL;
    }
    return n;
}

/* As host_set_heartbeat: the TTL travels inside each ping, so the other side
 * drops us after it when we go silent, and we notice a silent Mongrel2. */
static void set_heartbeat(void *sock, double seconds)
{
    if (seconds <= 0) return;
    int ivl = (int)(seconds * 1000), ttl = ivl * 3;
    if (ttl > 6553500) ttl = 6553500;   /* the TTL travels in deciseconds, 16 bits */
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &ttl, sizeof ttl);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
}

static void watch_socket(reader *r, ev_io *io, void *sock, void (*cb)(struct ev_loop *, ev_io *, int),
                         void *data)
{
    int fd;
    size_t len = sizeof fd;
    zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
    ev_io_init(io, cb, fd, EV_READ);
    io->data = data;
    ev_io_start(r->loop, io);
}

reader *reader_start(struct ev_loop *loop, const reader_config *c, char *err, size_t errlen)
{
    static char sends[DISPATCH_MAX_FRONTS][256], recvs[DISPATCH_MAX_FRONTS][256];
    reader *r = calloc(1, sizeof *r);
    if (!r || !(r->d = dispatch_new())) {
        snprintf(err, errlen, "out of memory");
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->c = *c;
    const char *wr = c->welcome_recv ? c->welcome_recv : c->recv_specs;
    r->welcome = malloc(strlen(wr) + 2);
    if (r->welcome) sprintf(r->welcome, "W%s", wr);
    int ns = split_specs(c->send_specs, sends, DISPATCH_MAX_FRONTS);
    int nr = split_specs(c->recv_specs, recvs, DISPATCH_MAX_FRONTS);
    if (ns <= 0 || ns != nr || !r->welcome) {
        snprintf(err, errlen, "the reader needs --send and --recv in pairs");
        goto error;
    }
    r->ctx = zmq_ctx_new();
    r->router = zmq_socket(r->ctx, ZMQ_ROUTER);
    r->pub = zmq_socket(r->ctx, ZMQ_PUB);
    int zero = 0, one = 1, linger = 1000;
    zmq_setsockopt(r->router, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(r->router, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(r->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(r->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r->pub, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(r->pub, ZMQ_LINGER, &linger, sizeof linger);
    set_heartbeat(r->pub, c->heartbeat);
    if (c->tcp_heartbeats) {
        int ivl = 1000, timeout = 3000;
        zmq_setsockopt(r->router, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(r->router, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
        zmq_setsockopt(r->router, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
    }
    if (zmq_bind(r->router, c->listen) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", c->listen, zmq_strerror(errno));
        goto error;
    }
    for (int f = 0; f < ns; f++) {
        front *fr = &r->fronts[f];
        fr->pull = zmq_socket(r->ctx, ZMQ_PULL);
        zmq_setsockopt(fr->pull, ZMQ_LINGER, &zero, sizeof zero);
        set_heartbeat(fr->pull, c->heartbeat);
        char mon[64];
        snprintf(mon, sizeof mon, "inproc://reader-front-%d", f);
        if (zmq_socket_monitor(fr->pull, mon, ZMQ_EVENT_CONNECTED) != 0) {
            snprintf(err, errlen, "cannot watch %s: %s", sends[f], zmq_strerror(errno));
            goto error;
        }
        fr->monitor = zmq_socket(r->ctx, ZMQ_PAIR);
        zmq_connect(fr->monitor, mon);
        if (zmq_connect(fr->pull, sends[f]) != 0 || zmq_connect(r->pub, recvs[f]) != 0) {
            snprintf(err, errlen, "cannot connect to %s / %s: %s", sends[f], recvs[f], zmq_strerror(errno));
            r->nfronts = f + 1;
            goto error;
        }
        r->nfronts = f + 1;
    }
    watch_socket(r, &r->router_io, r->router, router_cb, r);
    if (zmq_socket_monitor(r->router, "inproc://reader-members", ZMQ_EVENT_DISCONNECTED) == 0) {
        r->router_monitor = zmq_socket(r->ctx, ZMQ_PAIR);
        zmq_connect(r->router_monitor, "inproc://reader-members");
        watch_socket(r, &r->router_monitor_io, r->router_monitor, router_monitor_cb, r);
    }
    for (int f = 0; f < r->nfronts; f++) {
        front *fr = &r->fronts[f];
        fr->r = r;
        fr->index = f;
        fr->more = 1;   /* (a first look, like the router's below) */
        watch_socket(r, &fr->io, fr->pull, front_cb, fr);
        watch_socket(r, &fr->monitor_io, fr->monitor, monitor_cb, fr);
    }
    r->router_more = 1;
    ev_idle_init(&r->more, more_cb);
    r->more.data = r;
    ev_prepare_init(&r->check, check_cb);
    r->check.data = r;
    ev_prepare_start(loop, &r->check);
    ev_idle_start(loop, &r->more);
    if (c->death_fd >= 0) {
        ev_io_init(&r->death_io, death_cb, c->death_fd, EV_READ);
        r->death_io.data = r;
        ev_io_start(loop, &r->death_io);
    }
    ev_init(&r->credits_timer, credits_cb);
    r->credits_timer.data = r;
    ev_init(&r->probe, probe_cb);
    r->probe.repeat = 0.1;
    r->probe.data = r;
    ev_timer_init(&r->beat, beat_cb, BEAT_CHECK, BEAT_CHECK);
    r->beat.data = r;
    ev_timer_start(loop, &r->beat);
    return r;
error:
    reader_stop(r);
    return NULL;
}

void reader_stop(reader *r)
{
    if (!r) return;
    if (r->loop) {
        ev_io_stop(r->loop, &r->router_io);
        ev_io_stop(r->loop, &r->router_monitor_io);
        ev_io_stop(r->loop, &r->death_io);
        ev_idle_stop(r->loop, &r->more);
        ev_prepare_stop(r->loop, &r->check);
        ev_timer_stop(r->loop, &r->beat);
        ev_timer_stop(r->loop, &r->probe);
        ev_timer_stop(r->loop, &r->credits_timer);
    }
    for (int i = 0; i < r->ncredits; i++) zmq_msg_close(&r->credits[i].frame);
    for (int f = 0; f < r->nfronts; f++) {
        front *fr = &r->fronts[f];
        if (r->loop) {
            ev_io_stop(r->loop, &fr->io);
            ev_io_stop(r->loop, &fr->monitor_io);
        }
        if (fr->pull) {
            zmq_socket_monitor(fr->pull, NULL, 0);
            zmq_close(fr->pull);
        }
        if (fr->monitor) zmq_close(fr->monitor);
    }
    if (r->router_monitor) {
        zmq_socket_monitor(r->router, NULL, 0);
        zmq_close(r->router_monitor);
    }
    if (r->router) zmq_close(r->router);
    if (r->pub) zmq_close(r->pub);
    if (r->ctx) zmq_ctx_term(r->ctx);
    dispatch_free(r->d);
    free(r->held);
    free(r->welcome);
    free(r);
}
