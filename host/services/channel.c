/* Channels by name in a hash table; each holds its waiting tasks, linked
 * through their wait_prev/wait_next. */
#include "channel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_bus.h"

#define CHANNEL_BUCKETS 256

typedef struct lbk_channel {
    struct lbk_channel *next;    /* hash chain */
    lbk_channels *owner;         /* whose waiter count a leaving task lowers */
    lbk_task *waiters;           /* linked through wait_prev/wait_next */
    size_t name_len;
    char name[];
} lbk_channel;

struct lbk_channels {
    struct ev_loop *loop;
    lbk_channel *buckets[CHANNEL_BUCKETS];
    int nwaiters;
    /* How a payload reaches a waiter: the function its waiters joined with
     * (one binding, lua_channel.c, lets tasks wait, so one is kept). */
    channels_push_fn push;
    char *redis_url;             /* channels cross hosts through it; NULL: this host only */
    redis_bus *redis;            /* a host without workers holds the link itself */
};

lbk_channels *channels_new(struct ev_loop *loop)
{
    lbk_channels *ch = calloc(1, sizeof *ch);
    if (ch) ch->loop = loop;
    return ch;
}

void channels_free(lbk_channels *ch)
{
    if (!ch) return;
    redis_bus_stop(ch->redis);
    free(ch->redis_url);
    for (int i = 0; i < CHANNEL_BUCKETS; i++) {
        lbk_channel *c = ch->buckets[i];
        while (c) {
            lbk_channel *next = c->next;
            free(c);
            c = next;
        }
    }
    free(ch);
}

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static lbk_channel *find(lbk_channels *ch, const char *name, size_t len, int create)
{
    lbk_channel **bucket = &ch->buckets[hash(name, len) % CHANNEL_BUCKETS];
    for (lbk_channel *c = *bucket; c; c = c->next)
        if (c->name_len == len && memcmp(c->name, name, len) == 0) return c;
    if (!create) return NULL;
    lbk_channel *c = calloc(1, sizeof *c + len + 1);
    if (!c) return NULL;
    memcpy(c->name, name, len);
    c->name_len = len;
    c->owner = ch;
    c->next = *bucket;
    *bucket = c;
    return c;
}

void *channels_join(lbk_channels *ch, lbk_task *t, const char *name, size_t len,
                    channels_push_fn push)
{
    lbk_channel *c = find(ch, name, len, 1);
    if (!c) return NULL;
    ch->push = push;
    t->wait_prev = NULL;
    t->wait_next = c->waiters;
    if (c->waiters) c->waiters->wait_prev = t;
    c->waiters = t;
    ch->nwaiters++;
    return c;
}

void channels_leave(lbk_task *t)
{
    lbk_channel *c = t->wait_on;
    if (!c) return;
    if (t->wait_prev) t->wait_prev->wait_next = t->wait_next; else c->waiters = t->wait_next;
    if (t->wait_next) t->wait_next->wait_prev = t->wait_prev;
    t->wait_prev = t->wait_next = NULL;
    c->owner->nwaiters--;
}

/* Detaches c's waiters: a woken waiter that waits again joins a new list. */
static lbk_task *take_waiters(lbk_channels *ch, lbk_channel *c)
{
    lbk_task *t = c->waiters;
    c->waiters = NULL;
    for (lbk_task *w = t; w; w = w->wait_next) ch->nwaiters--;
    return t;
}

int channels_deliver(lbk_channels *ch, const char *name, size_t name_len, const char *payload, size_t len)
{
    lbk_channel *c = find(ch, name, name_len, 0);
    if (!c) return 0;
    int n = 0;
    lbk_task *t = take_waiters(ch, c);
    while (t) {
        lbk_task *next = t->wait_next;
        t->wait_prev = t->wait_next = NULL;
        sched_wake(t, ch->push(t, payload, len));
        n++;
        t = next;
    }
    return n;
}

int channels_publish(lbk_channels *ch, const char *name, size_t name_len, const char *payload, size_t len)
{
    if (ch->redis) redis_bus_publish(ch->redis, name, name_len, payload, len);   /* other hosts */
    return channels_deliver(ch, name, name_len, payload, len);
}

void channels_deliver_cb(void *ud, const char *name, size_t name_len, const char *payload, size_t len)
{
    channels_deliver(ud, name, name_len, payload, len);
}

int channels_waiters(const lbk_channels *ch)
{
    return ch->nwaiters;
}

void channels_wake_all(lbk_channels *ch, const char *reason)
{
    for (int i = 0; i < CHANNEL_BUCKETS; i++)
        for (lbk_channel *c = ch->buckets[i]; c; c = c->next) {
            lbk_task *t = take_waiters(ch, c);
            while (t) {
                lbk_task *next = t->wait_next;
                t->wait_prev = t->wait_next = NULL;
                sched_wake_result(t, 0, reason);
                t = next;
            }
        }
}

/* ---- across hosts ----------------------------------------------------------- */

static int keep_url(lbk_channels *ch, const char *url, char *err, size_t errlen)
{
    redis_url parsed;
    if (redis_url_parse(url, &parsed, err, errlen) != 0) return -1;
    char *copy = strdup(url);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(ch->redis_url);
    ch->redis_url = copy;
    return 0;
}

int channels_set_redis(lbk_channels *ch, const char *url, char *err, size_t errlen)
{
    return keep_url(ch, url, err, errlen);
}

int channels_offer_redis(lbk_channels *ch, const char *url, char *err, size_t errlen)
{
    if (!ch->redis_url) return keep_url(ch, url, err, errlen);
    redis_url parsed;   /* a later one is still checked, then ignored */
    return redis_url_parse(url, &parsed, err, errlen);
}

const char *channels_redis_url(const lbk_channels *ch)
{
    return ch->redis_url;
}

int channels_start_redis(lbk_channels *ch, char *err, size_t errlen)
{
    if (!ch->redis_url || ch->redis) return 0;
    /* Another host's publish wakes this host's waiters, and no one else's:
     * the other hosts got it from Redis too. */
    ch->redis = redis_bus_start(ch->loop, ch->redis_url, channels_deliver_cb, ch, err, errlen);
    return ch->redis ? 0 : -1;
}
