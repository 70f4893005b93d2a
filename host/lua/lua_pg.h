/* lubeck.pg's Lua face: lua_pg.c (core.pg, connections) and
 * lua_pg_types.c (values between PostgreSQL's text and Lua). */
#ifndef LUBECK_LUA_PG_H
#define LUBECK_LUA_PG_H

#include "host.h"
#include "pg.h"

/* lua_pg.c: adds connect, codec, listen, pooled to the table on top (core.pg) */
void pg_open(lua_State *L, lbk_gen *g);

/* lua_pg_types.c */
/* Pushes the Lua value of a field in text format. json_idx: a stack index of
 * a JSON decoder (0: JSON stays text). Malformed text is pushed as is. */
void pg_push_value(lua_State *L, Oid type, const char *s, size_t len, int json_idx);
/* Pushes the text of the Lua list at idx as an array literal of elem type
 * (nil/lightuserdata NULL are NULL, tables nest); NULL on success, or why
 * not (nothing pushed). */
const char *pg_push_array_literal(lua_State *L, int idx, Oid elem);

#endif
