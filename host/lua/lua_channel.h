/* lubeck.channel's functions in lubeck.core (lua_channel.c). */
#ifndef LUBECK_LUA_CHANNEL_H
#define LUBECK_LUA_CHANNEL_H

#include "host.h"

/* Adds channel_wait, channel_publish and channel_redis to the table on top. */
void channel_open(lua_State *L, lbk_gen *g);

#endif
