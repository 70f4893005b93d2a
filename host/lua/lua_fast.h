/* The host's hot accessors as plain C functions for LuaJIT's FFI
 * (lua/lubeck/fast.lua). Compiled Lua code calls an FFI function directly,
 * while a lua_CFunction ends the trace around the call and the rest of the
 * caller often runs in the interpreter. None of these calls back into Lua. */
#ifndef LUBECK_LUA_FAST_H
#define LUBECK_LUA_FAST_H

#include "host.h"

/* The FFI seam, written once. The C compiler reads these declarations here;
 * fast_open hands the same text to fast.lua as core.fast.cdef, which passes it
 * to ffi.cdef. So the two sides cannot disagree, and lua_fast.c checks at
 * compile time that each function has the type of its slot. Write only what
 * LuaJIT's C parser reads: plain C types, no macros (comments are fine, the
 * preprocessor drops them). */
#define LUBECK_FAST_DECLARATIONS                                                        \
    /* what query_arg and cookie return */                                              \
    enum lubeck_fast_found {                                                            \
        LUBECK_FAST_NO_MEMORY = -2,                                                     \
        LUBECK_FAST_ENDED = -1,    /* the handle names a request that has ended */      \
        LUBECK_FAST_ABSENT = 0,                                                         \
        LUBECK_FAST_FOUND = 1      /* *value, *value_len are set */                     \
    };                                                                                  \
    /* respond's content_type: the response's only header */                          \
    enum lubeck_fast_type {                                                             \
        LUBECK_FAST_NO_TYPE = 0,                                                        \
        LUBECK_FAST_HTML = 1,      /* text/html; charset=utf-8 */                       \
        LUBECK_FAST_JSON = 2       /* application/json */                               \
    };                                                                                  \
    typedef struct lubeck_fast_api {                                                    \
        int (*query_arg)(struct lbk_fast *f, double handle, const char *name,            \
                         size_t name_len, const char **value, size_t *value_len);       \
        int (*cookie)(struct lbk_fast *f, double handle, const char *name,               \
                      size_t name_len, const char **value, size_t *value_len);          \
        int (*respond)(struct lbk_fast *f, double handle, int status, const char *body,  \
                       size_t body_len, int content_type);                              \
    } lubeck_fast_api;

struct lbk_fast;   /* lua_fast.c's, one per generation */
LUBECK_FAST_DECLARATIONS

/* Adds to the table on top of the stack (core.fast): cdef (the declarations
 * above as text), api (the table of functions) and gen (their first
 * argument: the generation's lbk_fast, its scratch buffer and the generation),
 * the last two as light userdata. The lbk_fast lives as long as g's state. */
void fast_open(lua_State *L, lbk_gen *g);

#endif
