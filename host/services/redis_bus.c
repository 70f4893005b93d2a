#include "redis_bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include "log.h"

#define RETRY_FIRST 0.1          /* seconds before the first reconnect; doubles */
#define RETRY_MAX 2.0
#define CONNECT_TIMEOUT 5.0      /* hiredis 0.14 has none of its own for async connects */
#define ORIGIN_LEN 16            /* hex digits before every message's payload */
#define MAX_UNANSWERED 10000     /* publishes Redis has not acknowledged: past this it is stuck */

struct redis_bus {
    struct ev_loop *loop;
    redis_url url;
    char prefix[32];             /* "lubeck:DB:": every channel's Redis name starts with it */
    char origin[ORIGIN_LEN + 1];
    redis_bus_deliver_fn deliver;
    void *ud;
    redisAsyncContext *pub, *sub;    /* NULL when closed (hiredis frees them) */
    int pub_ready, subscribed;
    int up;                      /* both ready: publishes go out */
    int ever_up;
    int outage_logged;           /* this outage has been reported */
    int stopping;
    unsigned long dropped;       /* publishes not carried during this outage */
    int unanswered;              /* publishes sent on this connection, not yet acknowledged */
    double backoff;
    ev_timer timer;              /* the next reconnect, or a connect's time limit */
};

/* ---- the url ---------------------------------------------------------------- */

static int parse_int(const char *s, size_t n, long min, long max, long *out)
{
    if (n == 0 || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) return -1;
    *out = v;
    return 0;
}

int redis_url_parse(const char *url, redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "%s: a Redis url starts with redis:// (redis://HOST:PORT/DB)", url);
        return -1;
    }
    const char *p = url + 8;
    const char *at = NULL;   /* the last '@' before the path ends the password */
    for (const char *q = p; *q && *q != '/'; q++)
        if (*q == '@') at = q;
    if (at) {   /* [:]PASSWORD@ (a user name before the colon is not supported) */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if (colon && colon != p) {
            snprintf(err, errlen, "%s: only a password is supported (redis://:PASSWORD@HOST...)", url);
            return -1;
        }
        size_t n = (size_t)(at - pw);
        if (n == 0 || n >= sizeof out->password) {
            snprintf(err, errlen, "%s: bad password", url);
            return -1;
        }
        memcpy(out->password, pw, n);
        p = at + 1;
    }
    size_t host_len = strcspn(p, ":/");
    if (host_len == 0 || host_len >= sizeof out->host) {
        snprintf(err, errlen, "%s: no host (redis://HOST:PORT/DB)", url);
        return -1;
    }
    memcpy(out->host, p, host_len);
    p += host_len;
    long v;
    if (*p == ':') {
        size_t n = strcspn(++p, "/");
        if (parse_int(p, n, 1, 65535, &v) != 0) {
            snprintf(err, errlen, "%s: bad port", url);
            return -1;
        }
        out->port = (int)v;
        p += n;
    }
    if (*p == '/' && p[1]) {
        if (parse_int(p + 1, strlen(p + 1), 0, 1000000, &v) != 0) {
            snprintf(err, errlen, "%s: the database must be a number (redis://HOST:PORT/0)", url);
            return -1;
        }
        out->db = (int)v;
    } else if (*p && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "%s: unexpected '%s'", url, p);
        return -1;
    }
    return 0;
}

/* ---- the link's state ------------------------------------------------------- */

static void connect_both(redis_bus *b);

static void arm(redis_bus *b, double after)
{
    ev_timer_stop(b->loop, &b->timer);
    ev_timer_set(&b->timer, after, 0);
    ev_timer_start(b->loop, &b->timer);
}

/* Both connections go (the one that failed is hiredis's to free), and a
 * reconnect is scheduled. Logged once per outage. */
static void go_down(redis_bus *b, const char *why)
{
    b->up = b->pub_ready = b->subscribed = 0;
    redisAsyncContext *pub = b->pub, *sub = b->sub;
    b->pub = b->sub = NULL;
    if (pub) redisAsyncFree(pub);   /* its unanswered publishes count as dropped */
    if (sub) redisAsyncFree(sub);
    if (b->stopping) return;
    if (!b->outage_logged) {
        b->outage_logged = 1;
        if (b->ever_up)
            log_warn("redis: lost %s:%d (%s): channel publishes reach this host only until it is back",
                     b->url.host, b->url.port, why);
        else
            log_warn("redis: cannot reach %s:%d (%s): channel publishes reach this host only until it "
                     "answers (retrying)", b->url.host, b->url.port, why);
    }
    b->backoff = b->backoff ? b->backoff * 2 : RETRY_FIRST;
    if (b->backoff > RETRY_MAX) b->backoff = RETRY_MAX;
    arm(b, b->backoff);
}

static void maybe_up(redis_bus *b)
{
    if (b->up || !b->pub_ready || !b->subscribed) return;
    b->up = 1;
    b->backoff = 0;
    ev_timer_stop(b->loop, &b->timer);
    if (b->ever_up)
        log_warn("redis: back on %s:%d: %lu channel publish(es) made while it was away were not "
                 "carried to other hosts", b->url.host, b->url.port, b->dropped);
    else if (b->dropped)
        log_warn("redis: channels reach other hosts through %s:%d (db %d) now; %lu publish(es) made "
                 "before were not carried", b->url.host, b->url.port, b->url.db, b->dropped);
    else
        log_info("redis: channels reach other hosts through %s:%d (db %d)", b->url.host, b->url.port,
                 b->url.db);
    b->ever_up = 1;
    b->outage_logged = 0;
    b->dropped = 0;
}

/* A connection hiredis is about to free: forget it, then the other. */
static void conn_gone(redis_bus *b, const redisAsyncContext *c, const char *why)
{
    if (c == b->pub) b->pub = NULL;
    else if (c == b->sub) b->sub = NULL;
    else return;   /* one go_down already let go of */
    go_down(b, why);
}

static void on_connect(const redisAsyncContext *c, int status)
{
    redis_bus *b = c->data;
    if (status != REDIS_OK) return conn_gone(b, c, c->c.errstr[0] ? c->c.errstr : "cannot connect");
    if (c == b->pub) b->pub_ready = 1;
    maybe_up(b);
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    conn_gone(c->data, c, c->c.errstr[0] ? c->c.errstr : "connection closed");
}

/* A refused AUTH: both go, retried later (the password may be fixed meanwhile). */
static void on_auth(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_bus *b = privdata;
    if (!reply || reply->type != REDIS_REPLY_ERROR) return;
    char why[200];
    snprintf(why, sizeof why, "AUTH: %s", reply->str);
    if (c == b->pub || c == b->sub) go_down(b, why);
}

/* The pattern subscription's confirmation, then every message it matches. */
static void on_message(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_bus *b = privdata;
    if (!reply || c != b->sub) return;   /* closing */
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "PSUBSCRIBE: %s", reply->str);
        return go_down(b, why);
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const char *kind = reply->element[0]->str;
    if (!strcasecmp(kind, "psubscribe")) {
        b->subscribed = 1;
        return maybe_up(b);
    }
    if (strcasecmp(kind, "pmessage") != 0 || reply->elements != 4) return;
    const redisReply *channel = reply->element[2], *msg = reply->element[3];
    size_t plen = strlen(b->prefix);
    if (channel->len < plen || msg->len < ORIGIN_LEN) return;
    if (memcmp(msg->str, b->origin, ORIGIN_LEN) == 0) return;   /* ours: woken locally */
    b->deliver(b->ud, channel->str + plen, channel->len - plen, msg->str + ORIGIN_LEN,
               msg->len - ORIGIN_LEN);
}

static void on_published(redisAsyncContext *c, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_bus *b = privdata;
    b->unanswered--;
    if (reply && reply->type != REDIS_REPLY_ERROR) return;
    b->dropped++;   /* the connection went before Redis answered, or Redis refused it */
    if (reply) log_error_limited("redis: PUBLISH: %s", reply->str);
}

static redisAsyncContext *open_conn(redis_bus *b, char *why, size_t whylen)
{
    redisAsyncContext *c = redisAsyncConnect(b->url.host, b->url.port);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(why, whylen, "%s", c->c.errstr);
        redisAsyncFree(c);
        return NULL;
    }
    c->data = b;
    redisLibevAttach(b->loop, c);
    redisAsyncSetConnectCallback(c, on_connect);
    redisAsyncSetDisconnectCallback(c, on_disconnect);
    if (b->url.password[0]) redisAsyncCommand(c, on_auth, b, "AUTH %s", b->url.password);
    return c;
}

static void connect_both(redis_bus *b)
{
    char why[160] = "";
    b->pub = open_conn(b, why, sizeof why);
    if (b->pub) b->sub = open_conn(b, why, sizeof why);
    if (!b->pub || !b->sub) return go_down(b, why);
    char pattern[sizeof b->prefix + 1];
    snprintf(pattern, sizeof pattern, "%s*", b->prefix);
    redisAsyncCommand(b->sub, on_message, b, "PSUBSCRIBE %s", pattern);
    arm(b, CONNECT_TIMEOUT);
}

/* A reconnect is due, or a connect took too long. */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    redis_bus *b = w->data;
    if (b->pub || b->sub) go_down(b, "no answer within 5 s");
    else connect_both(b);
}

/* ---- the public side -------------------------------------------------------- */

redis_bus *redis_bus_start(struct ev_loop *loop, const char *url, redis_bus_deliver_fn deliver,
                           void *ud, char *err, size_t errlen)
{
    redis_bus *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (redis_url_parse(url, &b->url, err, errlen) != 0) {
        free(b);
        return NULL;
    }
    b->loop = loop;
    b->deliver = deliver;
    b->ud = ud;
    snprintf(b->prefix, sizeof b->prefix, "lubeck:%d:", b->url.db);
    unsigned char raw[ORIGIN_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {   /* never short for 8 bytes */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts.tv_nsec, sizeof raw < sizeof ts.tv_nsec ? sizeof raw : sizeof ts.tv_nsec);
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(b->origin + 2 * i, 3, "%02x", raw[i]);
    ev_init(&b->timer, timer_cb);
    b->timer.data = b;
    connect_both(b);
    return b;
}

void redis_bus_publish(redis_bus *b, const char *name, size_t name_len, const char *payload, size_t len)
{
    if (b->up && b->unanswered >= MAX_UNANSWERED)   /* (a Redis that stopped, not one that closed) */
        go_down(b, "10000 publishes unanswered");
    if (!b->up) {
        b->dropped++;
        return;
    }
    if (redisAsyncCommand(b->pub, on_published, b, "PUBLISH %s%b %s%b", b->prefix, name, name_len,
                          b->origin, payload, len) != REDIS_OK)
        b->dropped++;
    else
        b->unanswered++;
}

void redis_bus_stop(redis_bus *b)
{
    if (!b) return;
    b->stopping = 1;
    ev_timer_stop(b->loop, &b->timer);
    go_down(b, "stopping");
    free(b);
}
