#include "channel.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "redis_bus.h"
#include "scheduler.h"

#define CHANNEL_BUCKETS 256

typedef struct lbk_channel {
    struct lbk_channel *next;    /* hash chain */
    lbk_task *waiters;           /* linked through wait_prev/wait_next */
    size_t name_len;
    char name[];
} lbk_channel;

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static lbk_channel *find(lubeck *h, const char *name, size_t len, int create)
{
    if (!h->channels) {
        if (!create) return NULL;
        h->channels = calloc(CHANNEL_BUCKETS, sizeof *h->channels);
        if (!h->channels) return NULL;
    }
    lbk_channel **bucket = (lbk_channel **)&h->channels[hash(name, len) % CHANNEL_BUCKETS];
    for (lbk_channel *c = *bucket; c; c = c->next)
        if (c->name_len == len && memcmp(c->name, name, len) == 0) return c;
    if (!create) return NULL;
    lbk_channel *c = calloc(1, sizeof *c + len + 1);
    if (!c) return NULL;
    memcpy(c->name, name, len);
    c->name_len = len;
    c->next = *bucket;
    *bucket = c;
    return c;
}

static void unlink_waiter(lbk_task *t)
{
    lbk_channel *c = t->wait_on;
    if (!c) return;
    if (t->wait_prev) t->wait_prev->wait_next = t->wait_next; else c->waiters = t->wait_next;
    if (t->wait_next) t->wait_next->wait_prev = t->wait_prev;
    t->wait_prev = t->wait_next = NULL;
    t->gen->host->nchannel_waiters--;
}

int channel_publish(lubeck *h, const char *name, size_t name_len, const char *payload, size_t len)
{
    lbk_channel *c = find(h, name, name_len, 0);
    if (!c) return 0;
    int n = 0;
    /* Detach the list first: a woken waiter that waits again joins a new one. */
    lbk_task *t = c->waiters;
    c->waiters = NULL;
    while (t) {
        lbk_task *next = t->wait_next;
        t->wait_prev = t->wait_next = NULL;
        h->nchannel_waiters--;
        lua_pushlstring(t->co, payload, len);
        sched_wake(t, 1);
        n++;
        t = next;
    }
    return n;
}

void channel_wake_all(lubeck *h, const char *reason)
{
    if (!h->channels) return;
    for (int i = 0; i < CHANNEL_BUCKETS; i++)
        for (lbk_channel *c = h->channels[i]; c; c = c->next) {
            lbk_task *t = c->waiters;
            c->waiters = NULL;
            while (t) {
                lbk_task *next = t->wait_next;
                t->wait_prev = t->wait_next = NULL;
                h->nchannel_waiters--;
                lua_pushnil(t->co);
                lua_pushstring(t->co, reason);
                sched_wake(t, 2);
                t = next;
            }
        }
}

int channel_waiters(lubeck *h)
{
    return h->nchannel_waiters;
}

static lbk_gen *gen_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* channel_wait(name [, timeout]) → payload | nil, "timeout" | nil, "closed"
 * | nil, "closing" (the host is stopping: a long poll answers now) */
static int l_channel_wait(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    double timeout = luaL_optnumber(L, 2, -1);
    lbk_task *t = sched_running(g->sched, L, "channel:wait");
    if (g->host->stopping) {
        lua_pushnil(L);
        lua_pushliteral(L, "closing");
        return 2;
    }
    lbk_channel *c = find(g->host, name, len, 1);
    if (!c) return luaL_error(L, "channel:wait: out of memory");
    t->wait_prev = NULL;
    t->wait_next = c->waiters;
    if (c->waiters) c->waiters->wait_prev = t;
    c->waiters = t;
    g->host->nchannel_waiters++;
    return sched_wait(L, t, c, timeout, unlink_waiter, 0);
}

/* channel_publish(name, payload) → number woken in this process */
static int l_channel_publish(lua_State *L)
{
    lbk_gen *g = gen_of(L);
    size_t name_len, len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    const char *payload = luaL_checklstring(L, 2, &len);
    bus_send_channel(g->host, name, name_len, payload, len);   /* the other workers */
    if (g->host->redis) redis_bus_publish(g->host->redis, name, name_len, payload, len);   /* other hosts */
    lua_pushinteger(L, channel_publish(g->host, name, name_len, payload, len));
    return 1;
}

/* ---- across hosts ----------------------------------------------------------- */

int channel_set_redis(lubeck *h, const char *url, char *err, size_t errlen)
{
    redis_url parsed;
    if (redis_url_parse(url, &parsed, err, errlen) != 0) return -1;
    char *copy = strdup(url);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(h->redis_url);
    h->redis_url = copy;
    return 0;
}

const char *channel_redis_url(lubeck *h)
{
    return h->redis_url;
}

/* Another host's publish: wakes this host's waiters (and no one else's: the
 * other hosts got it from Redis too). */
static void from_other_host(void *ud, const char *name, size_t name_len, const char *payload, size_t len)
{
    channel_publish(ud, name, name_len, payload, len);
}

int channel_start_redis(lubeck *h)
{
    if (!h->redis_url || h->redis) return 0;
    char err[512];
    h->redis = redis_bus_start(h->loop, h->redis_url, from_other_host, h, err, sizeof err);
    if (!h->redis) {
        host_set_error(h, "%s", err);
        return -1;
    }
    return 0;
}

/* channel_redis([url]) → the url channels cross hosts through, or nil | nil, err
 * for a bad url. The app's redis option calls it while loading: --redis wins,
 * and a reload keeps the url the host started with (its link is made once). */
static int l_channel_redis(lua_State *L)
{
    lubeck *h = gen_of(L)->host;
    const char *url = luaL_optstring(L, 1, NULL);
    if (url) {
        redis_url parsed;
        char err[512];
        if (redis_url_parse(url, &parsed, err, sizeof err) != 0) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        if (!h->redis_url) {   /* --redis, or a first generation's option, stays */
            char *copy = strdup(url);
            if (!copy) return luaL_error(L, "out of memory");
            h->redis_url = copy;
        }
    }
    if (h->redis_url) lua_pushstring(L, h->redis_url); else lua_pushnil(L);
    return 1;
}

void channel_open(lua_State *L, lbk_gen *g)
{
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_channel_redis, 1);
    lua_setfield(L, -2, "channel_redis");
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_channel_wait, 1);
    lua_setfield(L, -2, "channel_wait");
    lua_pushlightuserdata(L, g);
    lua_pushcclosure(L, l_channel_publish, 1);
    lua_setfield(L, -2, "channel_publish");
}

void channel_free_all(lubeck *h)
{
    redis_bus_stop(h->redis);
    h->redis = NULL;
    free(h->redis_url);
    h->redis_url = NULL;
    if (!h->channels) return;
    for (int i = 0; i < CHANNEL_BUCKETS; i++) {
        lbk_channel *c = h->channels[i];
        while (c) {
            lbk_channel *next = c->next;
            free(c);
            c = next;
        }
    }
    free(h->channels);
    h->channels = NULL;
}
