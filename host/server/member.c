#include "member.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"

#define MAX_LINKS 16
#define RECV_BATCH 64
#define DONE_BATCH 512           /* tags per report at most */
/* Reports wait this long for company: under load one report a millisecond
 * carries tens of tags instead of one report (a wake-up of the reader and
 * of both ZeroMQ I/O threads) per loop iteration. A later report only keeps
 * a connection with its member a little longer and its count a little high. */
#define DONE_DELAY 0.001
#define BEAT_EVERY 0.5
#define MAX_REPLY_SPECS 64
#define READY_WAIT 3.0           /* then ready anyway: a Mongrel2 that is down must not hold up the rest */

typedef struct member_link {
    char spec[256];
    void *sock;                  /* DEALER */
    ev_io io;
    int welcomed;                /* relay: the reader named where replies go */
    int joined;                  /* said ready */
    int bye;                     /* the reader will hand nothing more */
    int more;                    /* stopped at the batch limit */
    int sent;                    /* sent since last drained: its fd edge may be spent */
    uint64_t done[DONE_BATCH];
    int ndone;
} member_link;

struct lbk_member {
    lubeck *h;
    int relay;
    member_link links[MAX_LINKS];
    int nlinks;
    char reply_specs[MAX_REPLY_SPECS][256];   /* connected on the reply socket */
    int nreply;
    int subscriptions;           /* seen on the reply socket (XPUB) */
    int leaving;
    double started;
    ev_io pub_io;
    ev_idle more;
    ev_prepare check;
    ev_timer beat;
    ev_timer report;             /* sends the reports DONE_DELAY after the first one waited */
};

int member_configure(lubeck *h, const char *reader_specs, int relay)
{
    struct lbk_member *m = calloc(1, sizeof *m);
    if (!m) return -1;
    m->h = h;
    m->relay = relay;
    const char *p = reader_specs;
    while (p && *p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (m->nlinks == MAX_LINKS || len >= sizeof m->links[0].spec) {
            free(m);
            return -1;
        }
        memcpy(m->links[m->nlinks++].spec, p, len);
        p = semi ? semi + 1 : NULL;
    }
    h->member = m;
    return 0;
}

/* ---- sending ------------------------------------------------------------------ */

static void send_hello(struct lbk_member *m, member_link *l)
{
    char msg[6];
    int32_t pid = (int32_t)getpid();
    msg[0] = 'H';
    memcpy(msg + 1, &pid, sizeof pid);
    msg[5] = (char)l->joined;
    l->sent = 1;
    zmq_send(l->sock, msg, sizeof msg, ZMQ_DONTWAIT);
}

static void flush_done(member_link *l)
{
    if (l->ndone == 0) return;
    char buf[1 + sizeof l->done];
    buf[0] = 'D';
    memcpy(buf + 1, l->done, (size_t)l->ndone * sizeof l->done[0]);
    l->sent = 1;
    if (zmq_send(l->sock, buf, 1 + (size_t)l->ndone * sizeof l->done[0], ZMQ_DONTWAIT) < 0)
        log_error_limited("reporting %d request(s) done to %s: %s", l->ndone, l->spec, zmq_strerror(errno));
    l->ndone = 0;
}

static void flush_all(struct lbk_member *m)
{
    for (int i = 0; i < m->nlinks; i++) flush_done(&m->links[i]);
}

_Static_assert(sizeof(dispatch_tag) == sizeof(uint64_t), "a reader's tag travels as 8 bytes");

void member_done(lubeck *h, int link, uint64_t tag, int closed)
{
    struct lbk_member *m = h->member;
    if (!m || link < 0 || link >= m->nlinks) return;
    member_link *l = &m->links[link];
    if (l->ndone == DONE_BATCH) flush_done(l);
    if (closed) {
        dispatch_tag t;
        memcpy(&t, &tag, sizeof t);
        t.front |= DISPATCH_TAG_CLOSED;
        memcpy(&tag, &t, sizeof tag);
    }
    l->done[l->ndone++] = tag;
    if (!ev_is_active(&m->report)) {
        ev_now_update(h->loop);   /* (the loop's time may be a busy iteration old) */
        ev_timer_set(&m->report, DONE_DELAY, 0);   /* (a timer that fired keeps what was left: < 0) */
        ev_timer_start(h->loop, &m->report);
    }
}

/* ---- the reply path ---------------------------------------------------------------- */

static int loopback_host(const char *host, size_t n)
{
    return (n == 9 && !memcmp(host, "127.0.0.1", 9)) || (n == 9 && !memcmp(host, "localhost", 9)) ||
           (n == 1 && host[0] == '*') || (n == 7 && !memcmp(host, "0.0.0.0", 7));
}

/* A relay beside Mongrel2 may name its recv spec as it reaches it
 * (tcp://127.0.0.1:P); a host elsewhere reaches it at the relay's address. */
static void reply_spec_for(const member_link *l, const char *spec, char *out, size_t len)
{
    snprintf(out, len, "%s", spec);
    if (strncmp(spec, "tcp://", 6) || strncmp(l->spec, "tcp://", 6)) return;
    const char *host = spec + 6, *colon = strrchr(host, ':');
    const char *rhost = l->spec + 6, *rcolon = strrchr(rhost, ':');
    if (!colon || !rcolon || !loopback_host(host, (size_t)(colon - host))) return;
    if (loopback_host(rhost, (size_t)(rcolon - rhost))) return;
    snprintf(out, len, "tcp://%.*s%s", (int)(rcolon - rhost), rhost, colon);
}

static int connect_reply(struct lbk_member *m, const char *spec)
{
    for (int i = 0; i < m->nreply; i++)
        if (!strcmp(m->reply_specs[i], spec)) return 0;
    if (m->nreply == MAX_REPLY_SPECS) return -1;
    if (zmq_connect(m->h->pub, spec) != 0) {
        log_error("cannot connect the reply socket to %s: %s", spec, zmq_strerror(errno));
        return -1;
    }
    snprintf(m->reply_specs[m->nreply++], sizeof m->reply_specs[0], "%s", spec);
    return 0;
}

static void on_welcome(struct lbk_member *m, member_link *l, const char *p, size_t n)
{
    if (!m->relay || l->welcomed) return;   /* a worker's replies go where its master said */
    char specs[2048];
    snprintf(specs, sizeof specs, "%.*s", (int)n, p);
    char *save = NULL;
    for (char *s = strtok_r(specs, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        char spec[256];
        reply_spec_for(l, s, spec, sizeof spec);
        if (connect_reply(m, spec) == 0) m->started = ev_now(m->h->loop);   /* its wait starts now */
    }
    l->welcomed = 1;
}

/* Every Mongrel2 the reply socket is connected to subscribes once it is
 * connected: until then a reply would be dropped, so the host is not ready
 * (for up to READY_WAIT: one Mongrel2 that is down must not stop the others). */
static void join_links(struct lbk_member *m)
{
    for (int i = 0; i < m->nlinks; i++) {
        member_link *l = &m->links[i];
        if (!l->joined && (l->welcomed || !m->relay)) {
            l->joined = 1;
            send_hello(m, l);
        }
    }
}

static void read_subscriptions(struct lbk_member *m)
{
    for (;;) {
        zmq_msg_t sub;
        zmq_msg_init(&sub);
        if (zmq_msg_recv(&sub, m->h->pub, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&sub);
            break;
        }
        if (zmq_msg_size(&sub) >= 1 && ((char *)zmq_msg_data(&sub))[0] == 1) m->subscriptions++;
        zmq_msg_close(&sub);
    }
    if (m->leaving || m->subscriptions < m->nreply || m->nreply == 0) return;
    join_links(m);
}

/* ---- receiving ------------------------------------------------------------------------ */

static void on_message(struct lbk_member *m, int link, zmq_msg_t *head)
{
    member_link *l = &m->links[link];
    const char *p = zmq_msg_data(head);
    size_t n = zmq_msg_size(head);
    if (n == 0) return;
    if (p[0] == 'M' && n == 1 + sizeof(uint64_t) && zmq_msg_more(head)) {
        uint64_t tag;
        memcpy(&tag, p + 1, sizeof tag);
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, l->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&frame);
            member_done(m->h, link, tag, 0);   /* (parts arrive together: cannot happen) */
            return;
        }
        host_receive(m->h, &frame, link, tag);
        zmq_msg_close(&frame);
        return;
    }
    if (p[0] == 'W') {
        on_welcome(m, l, p + 1, n - 1);
        read_subscriptions(m);
    } else if (p[0] == 'R') {
        host_front_reset(m->h, (slice){ p + 1, n - 1 });
    } else if (p[0] == 'B') {
        l->bye = 1;
    }
}

static int drain_link(struct lbk_member *m, int link)
{
    member_link *l = &m->links[link];
    for (int i = 0; i < RECV_BATCH; i++) {
        zmq_msg_t head;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, l->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            return 0;
        }
        on_message(m, link, &head);
        zmq_msg_close(&head);
        if (!m->h->member) return 0;
    }
    return 1;
}

static int pending(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

static void pump(struct lbk_member *m)
{
    int more = 0;
    for (int i = 0; i < m->nlinks && m->h->member; i++) {
        m->links[i].sent = 0;
        more |= m->links[i].more = drain_link(m, i);
    }
    if (more) ev_idle_start(m->h->loop, &m->more);
    else ev_idle_stop(m->h->loop, &m->more);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents) { pump(w->data); }
static void report_cb(struct ev_loop *loop, ev_timer *w, int revents) { flush_all(w->data); }
static void more_cb(struct ev_loop *loop, ev_idle *w, int revents) { pump(w->data); }
static void pub_cb(struct ev_loop *loop, ev_io *w, int revents) { read_subscriptions(w->data); }

/* Before the loop blocks: send the reports if leaving (the reader's bye
 * waits for them), and look again at a socket sent on since it was drained
 * (ZMQ_FD is edge-triggered: a send may spend the edge a message brought). */
static void check_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct lbk_member *m = w->data;
    int any = 0, waiting = 0;
    for (int i = 0; i < m->nlinks; i++) {
        member_link *l = &m->links[i];
        if (m->leaving) flush_done(l);
        if (l->sent && !l->more) {
            l->sent = 0;
            any |= pending(l->sock);
        }
        waiting |= !l->joined;
    }
    if (any) ev_idle_start(loop, &m->more);
    if (waiting && !m->leaving && pending(m->h->pub)) read_subscriptions(m);
}

static void beat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lbk_member *m = w->data;
    if (m->leaving) return;
    if (m->nreply > 0 && m->subscriptions < m->nreply && ev_now(loop) - m->started > READY_WAIT) {
        int waiting = 0;
        for (int i = 0; i < m->nlinks; i++) waiting |= !m->links[i].joined && (m->links[i].welcomed || !m->relay);
        if (waiting) {
            log_warn("only %d of %d Mongrel2 reply sockets answered: taking requests anyway",
                     m->subscriptions, m->nreply);
            join_links(m);
        }
    }
    for (int i = 0; i < m->nlinks; i++) send_hello(m, &m->links[i]);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static void watch(struct lbk_member *m, ev_io *io, void *sock, void (*cb)(struct ev_loop *, ev_io *, int))
{
    int fd;
    size_t len = sizeof fd;
    zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
    ev_io_init(io, cb, fd, EV_READ);
    io->data = m;
    ev_io_start(m->h->loop, io);
}

int member_start(lubeck *h)
{
    struct lbk_member *m = h->member;
    int zero = 0, one = 1;
    zmq_setsockopt(h->pub, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    if (h->recv_spec) {
        char *copy = strdup(h->recv_spec), *save = NULL;
        for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) connect_reply(m, s);
        free(copy);
    }
    /* Named for the logs (machine and pid), unique with a bit of the host's UUID. */
    char id[64], name[32] = "host";
    gethostname(name, sizeof name - 1);
    snprintf(id, sizeof id, "%.31s:%d:%.8s", name, (int)getpid(), h->sender_id);
    for (int i = 0; i < m->nlinks; i++) {
        member_link *l = &m->links[i];
        l->sock = zmq_socket(h->zctx, ZMQ_DEALER);
        host_set_heartbeat(h, l->sock);   /* a silent reader is noticed, and it notices us */
        zmq_setsockopt(l->sock, ZMQ_ROUTING_ID, id, strlen(id));
        zmq_setsockopt(l->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(l->sock, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt(l->sock, ZMQ_RCVHWM, &zero, sizeof zero);
        if (m->relay) {
            int ivl = 1000, timeout = 3000;
            zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
            zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
            zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
        }
        if (zmq_connect(l->sock, l->spec) != 0) {
            host_set_error(h, "cannot connect to %s: %s", l->spec, zmq_strerror(errno));
            return -1;
        }
        watch(m, &l->io, l->sock, io_cb);
        send_hello(m, l);   /* not ready yet: a relay answers with its welcome */
    }
    watch(m, &m->pub_io, h->pub, pub_cb);
    ev_idle_init(&m->more, more_cb);
    m->more.data = m;
    ev_prepare_init(&m->check, check_cb);
    m->check.data = m;
    ev_prepare_start(h->loop, &m->check);
    m->started = ev_now(h->loop);
    ev_timer_init(&m->report, report_cb, DONE_DELAY, 0);
    m->report.data = m;
    ev_timer_init(&m->beat, beat_cb, BEAT_EVERY, BEAT_EVERY);
    m->beat.data = m;
    ev_timer_start(h->loop, &m->beat);
    ev_idle_start(h->loop, &m->more);
    return 0;
}

void member_leave(lubeck *h)
{
    struct lbk_member *m = h->member;
    if (!m || m->leaving) return;
    m->leaving = 1;
    flush_all(m);
    for (int i = 0; i < m->nlinks; i++) {
        member_link *l = &m->links[i];
        if (!l->sock) continue;
        if (l->joined) zmq_send(l->sock, "L", 1, ZMQ_DONTWAIT);
        else l->bye = 1;   /* it was never handed anything */
    }
}

int member_settled(const lubeck *h)
{
    const struct lbk_member *m = h->member;
    if (!m) return 1;
    for (int i = 0; i < m->nlinks; i++)
        if (!m->links[i].bye) return 0;
    return 1;
}

void member_free(lubeck *h)
{
    struct lbk_member *m = h->member;
    if (!m) return;
    for (int i = 0; i < m->nlinks; i++) {
        member_link *l = &m->links[i];
        if (!l->sock) continue;
        flush_done(l);
        ev_io_stop(h->loop, &l->io);
        zmq_close(l->sock);
    }
    ev_io_stop(h->loop, &m->pub_io);
    ev_idle_stop(h->loop, &m->more);
    ev_prepare_stop(h->loop, &m->check);
    ev_timer_stop(h->loop, &m->beat);
    ev_timer_stop(h->loop, &m->report);
    free(m);
    h->member = NULL;
}
