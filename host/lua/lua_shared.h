/* lubeck.core.shared's get, set, incr: the Lua face of the
 * shared zone (lua_shared.c; the zone is services/shared.c). */
#ifndef LUBECK_LUA_SHARED_H
#define LUBECK_LUA_SHARED_H

#include <lua.h>

#include "gen.h"
#include "shared.h"

/* Adds the functions to the table on top; the host's zone, fixed before the
 * first generation loads, is their upvalue. */
void shared_open(lua_State *L, lbk_gen *g);

#endif
