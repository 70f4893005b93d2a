/* lubeck.spawn and its lubeck.Thread objects (lua_thread.c). */
#ifndef LUBECK_LUA_THREAD_H
#define LUBECK_LUA_THREAD_H

#include <lua.h>

#include "gen.h"

void thread_open(lua_State *L, lbk_gen *g);   /* adds spawn to the table on top */

#endif
