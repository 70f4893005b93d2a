/* The host's hot accessors as plain C functions for LuaJIT's FFI
 * (lua/lubeck/fast.lua). Compiled Lua code calls an FFI function directly,
 * while a lua_CFunction ends the trace around the call and the rest of the
 * caller often runs in the interpreter. None of these calls back into Lua. */
#ifndef LUBECK_LUA_FAST_H
#define LUBECK_LUA_FAST_H

#include "host.h"

/* Adds fast_api (the table of functions below) and fast_gen (their first
 * argument) to the table on top of the stack, as light userdata. */
void fast_open(lua_State *L, lbk_gen *g);

#endif
