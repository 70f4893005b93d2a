/* Room for a C function's scratch or result bytes: on the C stack when they
 * are few, else on the heap (raising "out of memory" when there is none).
 *     room r;  char *p = room_take(L, &r, n);  ...  room_free(&r); */
#ifndef LUBECK_LUA_ROOM_H
#define LUBECK_LUA_ROOM_H

#include <stdlib.h>
#include <lauxlib.h>

typedef struct room {
    char stack[512];
    char *p;
} room;

static inline char *room_take(lua_State *L, room *r, size_t size)
{
    r->p = size <= sizeof r->stack ? r->stack : malloc(size);
    if (!r->p) luaL_error(L, "out of memory");
    return r->p;
}

static inline void room_free(room *r)
{
    if (r->p != r->stack) free(r->p);
}

#endif
