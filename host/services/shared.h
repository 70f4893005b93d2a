/* lubeck.shared(name): key/value dicts shared by the workers of a host, in one
 * shared-memory zone made before they fork (see shared.c). */
#ifndef LUBECK_SHARED_H
#define LUBECK_SHARED_H

#include <stddef.h>
#include <lua.h>

#define SHARED_DEFAULT_SLOTS 8192   /* 512 bytes each: 4 MiB */

typedef struct shared_zone shared_zone;

shared_zone *shared_zone_new(size_t slots);
void shared_zone_free(shared_zone *z);
void shared_open(lua_State *L, shared_zone *z);   /* adds the functions to the table on top */

#endif
