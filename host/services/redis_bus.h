/* Channels across hosts through Redis: one link per host (a lone host's, or the
 * bus process's for a host with workers). A publish goes out as a Redis PUBLISH
 * on the channel "lubeck:DB:NAME"; a second connection holds one pattern
 * subscription to "lubeck:DB:*" and hands what other hosts published to the
 * deliver callback. Each message starts with the link's random origin id, so a
 * link skips its own publishes (their waiters were woken locally already).
 *
 * At most once: while Redis is unreachable publishes are counted and dropped,
 * the link says so once, reconnects with back-off, and on its return logs how
 * many were not carried. hiredis (its async client on libev) speaks RESP. */
#ifndef LUBECK_REDIS_BUS_H
#define LUBECK_REDIS_BUS_H

#include <stddef.h>
#include <ev.h>

typedef struct redis_url {
    char host[256];
    int port;                    /* 6379 unless given */
    int db;                      /* 0 unless given: names the channels' namespace */
    char password[256];          /* "" for none */
} redis_url;

/* Parses redis://[:PASSWORD@]HOST[:PORT][/DB]. 0, or -1 with the reason in err. */
int redis_url_parse(const char *url, redis_url *out, char *err, size_t errlen);

/* A message another host published on channel name (payload as its publisher
 * encoded it). */
typedef void (*redis_bus_deliver_fn)(void *ud, const char *name, size_t name_len,
                                     const char *payload, size_t len);

typedef struct redis_bus redis_bus;

/* Starts connecting (it never waits: an unreachable Redis is retried in the
 * background). NULL only for a bad url, with the reason in err. */
redis_bus *redis_bus_start(struct ev_loop *loop, const char *url, redis_bus_deliver_fn deliver,
                           void *ud, char *err, size_t errlen);
/* Sends to the other hosts; counted as not carried while Redis is away. */
void redis_bus_publish(redis_bus *b, const char *name, size_t name_len, const char *payload, size_t len);
void redis_bus_stop(redis_bus *b);

#endif
