/* lubeck.shared(name): small key/value dicts shared by all the workers of one
 * host, for counters and caches. They live in one shared-memory zone that
 * exists before the workers fork: a fixed table of slots, open addressing,
 * under one process-shared robust mutex (a worker killed while holding it
 * does not stop the others). Every operation is one short critical section
 * with no I/O, so it is atomic and visible to every worker at once.
 * Values are strings, numbers or booleans; entries may expire (ttl).
 * host/lua/lua_shared.c is its Lua face. */
#define _GNU_SOURCE
#include "shared.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SLOT_DATA SHARED_DATA_MAX   /* name '\0' key, then the value bytes */

enum { SLOT_EMPTY, SLOT_USED, SLOT_DELETED };

typedef struct slot {
    uint32_t hash;
    uint8_t state, type;         /* type: a shared_type */
    uint16_t klen;               /* length of name '\0' key */
    uint32_t vlen;
    double expires;              /* 0: never */
    double number;
    char data[SLOT_DATA];
} slot;

struct shared_zone {
    pthread_mutex_t lock;
    size_t nslots, used;
    size_t bytes;
    slot slots[];
};

shared_zone *shared_zone_new(size_t nslots)
{
    size_t bytes = sizeof(shared_zone) + nslots * sizeof(slot);
    shared_zone *z = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (z == MAP_FAILED) return NULL;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&z->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    z->nslots = nslots;
    z->bytes = bytes;
    return z;   /* mmap gives zeroes: every slot starts empty */
}

void shared_zone_free(shared_zone *z)
{
    if (z) munmap(z, z->bytes);
}

static void lock(shared_zone *z)
{
    if (pthread_mutex_lock(&z->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&z->lock);   /* its holder died mid-update of one slot at most */
}

static void unlock(shared_zone *z)
{
    pthread_mutex_unlock(&z->lock);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* the same clock in every worker */
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot holding the key, or NULL; *free_slot gets the first reusable slot
 * on the probe path (for an insert). Expired entries are dropped on the way. */
static slot *find(shared_zone *z, const char *k, size_t klen, uint32_t h, slot **free_slot)
{
    double t = now();
    *free_slot = NULL;
    for (size_t i = 0; i < z->nslots; i++) {
        slot *s = &z->slots[(h + i) % z->nslots];
        if (s->state == SLOT_USED && s->expires > 0 && s->expires <= t) {
            s->state = SLOT_DELETED;
            z->used--;
        }
        if (s->state == SLOT_EMPTY) {
            if (!*free_slot) *free_slot = s;
            return NULL;
        }
        if (s->state == SLOT_DELETED) {
            if (!*free_slot) *free_slot = s;
            continue;
        }
        if (s->hash == h && s->klen == klen && memcmp(s->data, k, klen) == 0) return s;
    }
    return NULL;
}

/* Takes the free slot find() offered for a new key, or NULL when the table is
 * full (a quarter stays free so probes stay short). */
static slot *claim(shared_zone *z, slot *free_slot, const char *k, size_t klen, uint32_t h)
{
    if (!free_slot || z->used + 1 > z->nslots - z->nslots / 4) return NULL;
    free_slot->state = SLOT_USED;
    free_slot->hash = h;
    free_slot->klen = (uint16_t)klen;
    memcpy(free_slot->data, k, klen);
    z->used++;
    return free_slot;
}

/* "name\0key" into buf (SHARED_KEY_MAX bytes); its length, or 0 when too long. */
static size_t full_key(char *buf, const char *name, size_t nlen, const char *key, size_t klen)
{
    if (nlen + 1 + klen > SHARED_KEY_MAX) return 0;
    memcpy(buf, name, nlen);
    buf[nlen] = 0;
    memcpy(buf + nlen + 1, key, klen);
    return nlen + 1 + klen;
}

static int fail(const char **err, const char *reason)
{
    *err = reason;
    return -1;
}

static int fail_unlock(shared_zone *z, const char **err, const char *reason)
{
    unlock(z);
    return fail(err, reason);
}

int shared_get(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
               shared_value *out, char *buf, const char **err)
{
    char k[SHARED_KEY_MAX];
    size_t kl = full_key(k, name, nlen, key, klen);
    if (!kl) return fail(err, "key too long");
    slot *free_slot;
    memset(out, 0, sizeof *out);
    lock(z);
    slot *s = find(z, k, kl, hash(k, kl), &free_slot);
    if (s) {
        out->type = s->type;
        out->number = s->number;
        if (s->type == SHARED_STRING) {
            memcpy(buf, s->data + s->klen, s->vlen);
            out->str = buf;
            out->len = s->vlen;
        }
    }
    unlock(z);
    return 0;
}

int shared_set(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
               const shared_value *v, double ttl, const char **err)
{
    char k[SHARED_KEY_MAX];
    size_t kl = full_key(k, name, nlen, key, klen);
    if (!kl) return fail(err, "key too long");
    size_t vlen = v->type == SHARED_STRING ? v->len : 0;
    if (kl + vlen > SLOT_DATA) return fail(err, "too large");
    uint32_t h = hash(k, kl);
    slot *free_slot;
    lock(z);
    slot *s = find(z, k, kl, h, &free_slot);
    if (v->type == SHARED_NIL) {
        if (s) { s->state = SLOT_DELETED; z->used--; }
        unlock(z);
        return 0;
    }
    if (!s && !(s = claim(z, free_slot, k, kl, h))) return fail_unlock(z, err, "no memory");
    s->expires = ttl > 0 ? now() + ttl : 0;
    s->type = (uint8_t)v->type;
    s->number = v->type == SHARED_BOOLEAN ? (v->number != 0) : v->type == SHARED_NUMBER ? v->number : 0;
    s->vlen = (uint32_t)vlen;
    if (vlen) memcpy(s->data + kl, v->str, vlen);
    unlock(z);
    return 0;
}

int shared_incr(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
                double by, int has_init, double init, double ttl, double *result, const char **err)
{
    char k[SHARED_KEY_MAX];
    size_t kl = full_key(k, name, nlen, key, klen);
    if (!kl) return fail(err, "key too long");
    uint32_t h = hash(k, kl);
    slot *free_slot;
    lock(z);
    slot *s = find(z, k, kl, h, &free_slot);
    if (!s) {
        if (!has_init) return fail_unlock(z, err, "not found");
        if (!(s = claim(z, free_slot, k, kl, h))) return fail_unlock(z, err, "no memory");
        s->type = SHARED_NUMBER;
        s->number = init;
        s->vlen = 0;
        s->expires = ttl > 0 ? now() + ttl : 0;
    } else if (s->type != SHARED_NUMBER) {
        return fail_unlock(z, err, "not a number");
    }
    s->number += by;
    *result = s->number;
    unlock(z);
    return 0;
}
