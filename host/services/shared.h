/* The zone behind lubeck.shared(name): key/value dicts shared by the workers
 * of a host, in one shared-memory zone made before they fork (see shared.c).
 * Plain C; the Lua face is host/lua/lua_shared.c. A key is a dict's name and
 * a key in it; a value is a string, a number or a boolean. */
#ifndef LUBECK_SHARED_H
#define LUBECK_SHARED_H

#include <stddef.h>

#define SHARED_DEFAULT_SLOTS 8192   /* 512 bytes each: 4 MiB */
#define SHARED_KEY_MAX 256          /* name, '\0' and key together */
#define SHARED_DATA_MAX 472         /* name, '\0', key and a string value together */

typedef struct shared_zone shared_zone;

typedef enum shared_type { SHARED_NIL, SHARED_STRING, SHARED_NUMBER, SHARED_BOOLEAN } shared_type;

typedef struct shared_value {
    shared_type type;            /* SHARED_NIL: no such key (get), delete it (set) */
    double number;               /* SHARED_NUMBER; SHARED_BOOLEAN: 0 or 1 */
    const char *str;             /* SHARED_STRING: len bytes */
    size_t len;
} shared_value;

/* A zone of that many slots (each holds one entry); NULL when mmap fails. */
shared_zone *shared_zone_new(size_t slots);
void shared_zone_free(shared_zone *z);

/* Each call below is one short critical section, atomic across processes.
 * They return 0, or -1 with *err the reason a caller shows: "key too long",
 * "too large", "no memory" (the zone is full), "not found", "not a number". */

/* The value of (name, key) into *out, a string copied into buf (which holds
 * SHARED_DATA_MAX bytes); out->type is SHARED_NIL when there is none. */
int shared_get(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
               shared_value *out, char *buf, const char **err);
/* Stores v under (name, key), for ttl seconds (0: for good); a SHARED_NIL v
 * deletes it. */
int shared_set(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
               const shared_value *v, double ttl, const char **err);
/* Adds by to the number under (name, key) into *result. A missing key starts
 * at init (with that ttl) when has_init, else is "not found". */
int shared_incr(shared_zone *z, const char *name, size_t nlen, const char *key, size_t klen,
                double by, int has_init, double init, double ttl, double *result, const char **err);

#endif
