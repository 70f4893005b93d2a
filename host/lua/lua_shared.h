/* lubeck.core's shared_get, shared_set, shared_incr: the Lua face of the
 * shared zone (lua_shared.c; the zone is services/shared.c). */
#ifndef LUBECK_LUA_SHARED_H
#define LUBECK_LUA_SHARED_H

#include <lua.h>

#include "shared.h"

void shared_open(lua_State *L, shared_zone *z);   /* adds the functions to the table on top */

#endif
