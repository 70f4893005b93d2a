/* lubeck.channel's functions, lubeck.core.channel (lua_channel.c). */
#ifndef LUBECK_LUA_CHANNEL_H
#define LUBECK_LUA_CHANNEL_H

#include "host.h"

/* Adds wait, publish and redis to the table on top. */
void channel_open(lua_State *L, lbk_gen *g);

#endif
