/* libFuzzer target for pg_types.c and lua_pg_types.c: text values as PostgreSQL sends them
 * (arrays above all, also bytea, integers, floats, timestamps) to Lua. The
 * first byte picks the type. A text[] that parses is written back as an array
 * literal, which must read back to the same literal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_pg.h"

static const Oid types[] = {
    1009, 1007, 1016, 1022, 1231, 1000, 1001, 1185, 3807, 2951,
    PG_BYTEA, PG_INT8, PG_INT4, PG_FLOAT8, PG_TIMESTAMP, PG_TIMESTAMPTZ, PG_BOOL, PG_TEXT,
};

static lua_State *L;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!L) L = luaL_newstate();
    Oid type = types[data[0] % (sizeof types / sizeof types[0])];
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);   /* exact size: ASan sees any overrun */
    if (!text) return 0;
    memcpy(text, data + 1, len);
    pg_push_value(L, type, text, len, 0);
    if (lua_gettop(L) != 1) abort();
    if (type == 1009 && lua_istable(L, 1) && !pg_push_array_literal(L, 1, PG_TEXT)) {
        size_t n1;
        const char *first = lua_tolstring(L, 2, &n1);
        pg_push_value(L, 1009, first, n1, 0);
        if (!lua_istable(L, 3) || pg_push_array_literal(L, 3, PG_TEXT)) abort();
        size_t n2;
        const char *second = lua_tolstring(L, 4, &n2);
        if (n1 != n2 || memcmp(first, second, n1) != 0) abort();
    }
    lua_settop(L, 0);
    free(text);
    return 0;
}
