#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

/* One connection Mongrel2 has handed us and not yet said is gone: open
 * hashing on (front, conn id), entries from a free list. */
typedef struct conn_entry {
    uint64_t key;
    int member;                  /* the member that holds it, or held it last */
    int held;                    /* its messages in flight */
    int websocket;
    int ended;                   /* its disconnect notice was routed */
    struct conn_entry *next;
} conn_entry;

struct dispatch {
    dispatch_member *members;
    int nmembers;
    int rotor;                   /* where the next least-busy scan starts: ties rotate */
    conn_entry **buckets;
    uint32_t mask;
    size_t nconns;
    conn_entry *spare;
    uint16_t epoch[DISPATCH_MAX_FRONTS];
};

static uint64_t conn_key(int front, uint32_t conn_id)
{
    return (uint64_t)(uint32_t)front << 32 | conn_id;
}

static uint32_t bucket_of(const dispatch *d, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & d->mask;
}

dispatch *dispatch_new(void)
{
    dispatch *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->mask = 1023;
    d->buckets = calloc(d->mask + 1, sizeof *d->buckets);
    if (!d->buckets) {
        free(d);
        return NULL;
    }
    return d;
}

void dispatch_free(dispatch *d)
{
    if (!d) return;
    for (uint32_t i = 0; i <= d->mask; i++) {
        for (conn_entry *e = d->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    for (conn_entry *e = d->spare, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(d->buckets);
    free(d->members);
    free(d);
}

static void grow(dispatch *d)
{
    uint32_t size = (d->mask + 1) * 2;
    conn_entry **grown = calloc(size, sizeof *grown);
    if (!grown) return;   /* longer chains, nothing lost */
    uint32_t old = d->mask;
    d->mask = size - 1;
    for (uint32_t i = 0; i <= old; i++) {
        for (conn_entry *e = d->buckets[i], *next; e; e = next) {
            next = e->next;
            uint32_t b = bucket_of(d, e->key);
            e->next = grown[b];
            grown[b] = e;
        }
    }
    free(d->buckets);
    d->buckets = grown;
}

static conn_entry **find_slot(dispatch *d, uint64_t key)
{
    conn_entry **pp = &d->buckets[bucket_of(d, key)];
    while (*pp && (*pp)->key != key) pp = &(*pp)->next;
    return pp;
}

static void unlink_entry(dispatch *d, conn_entry **pp)
{
    conn_entry *e = *pp;
    *pp = e->next;
    e->next = d->spare;
    d->spare = e;
    d->nconns--;
}

/* ---- members ---------------------------------------------------------------- */

int dispatch_member_count(const dispatch *d)
{
    return d->nmembers;
}

dispatch_member *dispatch_member_at(dispatch *d, int m)
{
    return m >= 0 && m < d->nmembers && d->members[m].state != MEMBER_FREE ? &d->members[m] : NULL;
}

int dispatch_find(const dispatch *d, const void *id, size_t idlen)
{
    for (int m = 0; m < d->nmembers; m++) {
        const dispatch_member *mb = &d->members[m];
        if (mb->state != MEMBER_FREE && mb->idlen == idlen && memcmp(mb->id, id, idlen) == 0) return m;
    }
    return -1;
}

int dispatch_find_pid(const dispatch *d, int pid)
{
    for (int m = 0; m < d->nmembers; m++)
        if (d->members[m].state != MEMBER_FREE && d->members[m].pid == pid) return m;
    return -1;
}

int dispatch_join(dispatch *d, const void *id, size_t idlen, int pid)
{
    if (idlen > sizeof d->members[0].id) return -1;
    int m;
    for (m = 0; m < d->nmembers; m++)
        if (d->members[m].state == MEMBER_FREE) break;
    if (m == d->nmembers) {
        dispatch_member *grown = realloc(d->members, (size_t)(d->nmembers + 1) * sizeof *grown);
        if (!grown) return -1;
        d->members = grown;
        d->nmembers++;
    }
    dispatch_member *mb = &d->members[m];
    memset(mb, 0, sizeof *mb);
    mb->state = MEMBER_READY;
    memcpy(mb->id, id, idlen);
    mb->idlen = idlen;
    mb->pid = pid;
    return m;
}

void dispatch_leave(dispatch *d, int m)
{
    if (dispatch_member_at(d, m)) d->members[m].state = MEMBER_LEAVING;
}

void dispatch_remove(dispatch *d, int m, dispatch_held_fn held, void *ud)
{
    dispatch_member *mb = dispatch_member_at(d, m);
    if (!mb) return;
    int leaving = mb->state == MEMBER_LEAVING;
    mb->state = MEMBER_FREE;   /* first: a callback must not route to it */
    for (uint32_t i = 0; i <= d->mask; i++) {
        conn_entry **pp = &d->buckets[i];
        while (*pp) {
            conn_entry *e = *pp;
            if (e->member != m) {
                pp = &e->next;
                continue;
            }
            if (held && e->held > 0)
                held(ud, (int)(e->key >> 32), (uint32_t)e->key, e->websocket, leaving);
            unlink_entry(d, pp);
        }
    }
}

int dispatch_ready_count(const dispatch *d)
{
    int n = 0;
    for (int m = 0; m < d->nmembers; m++) n += d->members[m].state == MEMBER_READY;
    return n;
}

/* ---- routing ------------------------------------------------------------------ */

static int least_busy(dispatch *d)
{
    int best = -1, n = d->nmembers;
    for (int k = 0; k < n; k++) {
        int m = (d->rotor + k) % n;
        if (d->members[m].state != MEMBER_READY) continue;
        if (best < 0 || d->members[m].inflight < d->members[best].inflight) best = m;
    }
    if (best >= 0) d->rotor = (best + 1) % n;
    return best;
}

int dispatch_route(dispatch *d, int front, uint32_t conn_id, int notice, int websocket, dispatch_tag *tag)
{
    if (front < 0 || front >= DISPATCH_MAX_FRONTS) return -1;
    uint64_t key = conn_key(front, conn_id);
    conn_entry **pp = find_slot(d, key);
    conn_entry *e = *pp;
    int m;
    if (e && e->held == 0 && !notice) {
        /* Nothing in flight: a new request goes to the least busy member. */
        m = least_busy(d);
        if (m < 0) return -1;
        e->member = m;
        e->websocket = 0;
    } else if (e) {
        m = e->member;
    } else {
        if (notice) return -1;   /* nobody holds anything of it: nothing to tell */
        m = least_busy(d);
        if (m < 0) return -1;
        if (d->nconns + 1 > 2 * (size_t)(d->mask + 1)) {
            grow(d);
            pp = find_slot(d, key);
        }
        e = d->spare;
        if (e) d->spare = e->next;
        else if (!(e = malloc(sizeof *e))) return m;   /* routed, just not tracked */
        e->key = key;
        e->member = m;
        e->held = 0;
        e->websocket = 0;
        e->ended = 0;
        e->next = NULL;
        *pp = e;
        d->nconns++;
    }
    e->held++;
    if (websocket) e->websocket = 1;
    if (notice == DISPATCH_NOTICE) e->ended = 1;
    d->members[m].inflight++;
    tag->conn_id = conn_id;
    tag->front = (uint16_t)front;
    tag->epoch = d->epoch[front];
    return m;
}

void dispatch_done(dispatch *d, int m, const dispatch_tag *tag)
{
    dispatch_member *mb = dispatch_member_at(d, m);
    if (!mb) return;
    if (mb->inflight > 0) mb->inflight--;
    int front = tag->front & ~DISPATCH_TAG_CLOSED;
    if (front >= DISPATCH_MAX_FRONTS || tag->epoch != d->epoch[front]) return;
    conn_entry **pp = find_slot(d, conn_key(front, tag->conn_id));
    conn_entry *e = *pp;
    if (!e || e->member != m) return;
    if (e->held > 0) e->held--;
    if (tag->front & DISPATCH_TAG_CLOSED) e->ended = 1;
    if (e->held == 0 && e->ended) unlink_entry(d, pp);   /* else kept for its credits */
}

void dispatch_front_reset(dispatch *d, int front)
{
    if (front < 0 || front >= DISPATCH_MAX_FRONTS) return;
    d->epoch[front]++;
    for (uint32_t i = 0; i <= d->mask; i++) {
        conn_entry **pp = &d->buckets[i];
        while (*pp) {
            if ((int)((*pp)->key >> 32) == front) unlink_entry(d, pp);
            else pp = &(*pp)->next;
        }
    }
}

size_t dispatch_conn_count(const dispatch *d)
{
    return d->nconns;
}
