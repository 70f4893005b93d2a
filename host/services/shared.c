/* lubeck.shared(name): small key/value dicts shared by all the workers of one
 * host, for counters and caches. They live in one shared-memory zone that
 * exists before the workers fork: a fixed table of slots, open addressing,
 * under one process-shared robust mutex (a worker killed while holding it
 * does not stop the others). Every operation is one short critical section
 * with no I/O, so it is atomic and visible to every worker at once.
 * Values are strings, numbers or booleans; entries may expire (ttl). */
#define _GNU_SOURCE
#include "shared.h"

#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define SLOT_DATA 472            /* name '\0' key, then the value bytes */

enum { SLOT_EMPTY, SLOT_USED, SLOT_DELETED };
enum { VAL_STRING, VAL_NUMBER, VAL_BOOLEAN };

typedef struct slot {
    uint32_t hash;
    uint8_t state, type;
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

static int no_memory(lua_State *L, shared_zone *z)
{
    unlock(z);
    lua_pushnil(L);
    lua_pushliteral(L, "no memory");
    return 2;
}

/* "name\0key" into buf; returns its length or 0 when too long. */
static size_t full_key(lua_State *L, char *buf)
{
    size_t nlen, klen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    const char *key = luaL_checklstring(L, 2, &klen);
    if (nlen + 1 + klen > 256) return 0;
    memcpy(buf, name, nlen);
    buf[nlen] = 0;
    memcpy(buf + nlen + 1, key, klen);
    return nlen + 1 + klen;
}

static shared_zone *zone_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void push_value(lua_State *L, const slot *s)
{
    switch (s->type) {
    case VAL_NUMBER: lua_pushnumber(L, s->number); break;
    case VAL_BOOLEAN: lua_pushboolean(L, s->number != 0); break;
    default: lua_pushlstring(L, s->data + s->klen, s->vlen);
    }
}

/* shared_get(name, key) → value | nil */
static int l_get(lua_State *L)
{
    shared_zone *z = zone_of(L);
    char k[256];
    size_t klen = full_key(L, k);
    if (!klen) return luaL_argerror(L, 2, "key too long");
    slot *free_slot;
    lock(z);
    slot *s = find(z, k, klen, hash(k, klen), &free_slot);
    if (s) push_value(L, s); else lua_pushnil(L);
    unlock(z);
    return 1;
}

/* shared_set(name, key, value [, ttl]) → true | nil, err; a nil value deletes */
static int l_set(lua_State *L)
{
    shared_zone *z = zone_of(L);
    char k[256];
    size_t klen = full_key(L, k);
    if (!klen) return luaL_argerror(L, 2, "key too long");
    int type = lua_type(L, 3);
    double ttl = luaL_optnumber(L, 4, 0);
    size_t vlen = 0;
    const char *v = NULL;
    if (type == LUA_TSTRING) v = lua_tolstring(L, 3, &vlen);
    else if (type != LUA_TNUMBER && type != LUA_TBOOLEAN && type != LUA_TNIL)
        return luaL_argerror(L, 3, "a shared value is a string, number or boolean");
    if (klen + vlen > SLOT_DATA) {
        lua_pushnil(L);
        lua_pushliteral(L, "too large");
        return 2;
    }
    uint32_t h = hash(k, klen);
    slot *free_slot;
    lock(z);
    slot *s = find(z, k, klen, h, &free_slot);
    if (type == LUA_TNIL) {
        if (s) { s->state = SLOT_DELETED; z->used--; }
        unlock(z);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!s && !(s = claim(z, free_slot, k, klen, h))) return no_memory(L, z);
    s->expires = ttl > 0 ? now() + ttl : 0;
    s->type = type == LUA_TSTRING ? VAL_STRING : type == LUA_TNUMBER ? VAL_NUMBER : VAL_BOOLEAN;
    s->number = type == LUA_TNUMBER ? lua_tonumber(L, 3) : (double)lua_toboolean(L, 3);
    s->vlen = (uint32_t)vlen;
    if (vlen) memcpy(s->data + klen, v, vlen);
    unlock(z);
    lua_pushboolean(L, 1);
    return 1;
}

/* shared_incr(name, key, by [, init [, ttl]]) → new value | nil, err */
static int l_incr(lua_State *L)
{
    shared_zone *z = zone_of(L);
    char k[256];
    size_t klen = full_key(L, k);
    if (!klen) return luaL_argerror(L, 2, "key too long");
    double by = luaL_optnumber(L, 3, 1);
    int has_init = !lua_isnoneornil(L, 4);
    double init = luaL_optnumber(L, 4, 0);
    double ttl = luaL_optnumber(L, 5, 0);
    uint32_t h = hash(k, klen);
    slot *free_slot;
    lock(z);
    slot *s = find(z, k, klen, h, &free_slot);
    if (!s) {
        if (!has_init) {
            unlock(z);
            lua_pushnil(L);
            lua_pushliteral(L, "not found");
            return 2;
        }
        if (!(s = claim(z, free_slot, k, klen, h))) return no_memory(L, z);
        s->type = VAL_NUMBER;
        s->number = init;
        s->vlen = 0;
        s->expires = ttl > 0 ? now() + ttl : 0;
    } else if (s->type != VAL_NUMBER) {
        unlock(z);
        lua_pushnil(L);
        lua_pushliteral(L, "not a number");
        return 2;
    }
    s->number += by;
    lua_pushnumber(L, s->number);
    unlock(z);
    return 1;
}

void shared_open(lua_State *L, shared_zone *z)
{
    static const luaL_Reg fns[] = {
        { "shared_get", l_get }, { "shared_set", l_set }, { "shared_incr", l_incr }, { NULL, NULL }
    };
    lua_pushlightuserdata(L, z);   /* every function's upvalue */
    luaL_setfuncs(L, fns, 1);
}
