/* Values between PostgreSQL's text format and Lua. Each result field is
 * converted by its type (the text read by pg_types.c): integers to numbers
 * (int8 past 2^53 stays a string, a double would round it), floats to
 * numbers, numeric stays a string (exact), bool, bytea to the raw bytes,
 * json/jsonb decoded, timestamps to RFC 3339, arrays to lists (a NULL element
 * is the lightuserdata NULL, which is cjson.null). Anything else is its text.
 * Parameters go the other way: a Lua list becomes an array literal. */
#include "lua_pg.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

static void push_integer(lua_State *L, const char *s, size_t len)
{
    double v;
    if (pg_text_integer(s, len, &v) == 0) lua_pushnumber(L, v); else lua_pushlstring(L, s, len);
}

static void push_float(lua_State *L, const char *s, size_t len)
{
    double v;
    if (pg_text_float(s, len, &v) == 0) lua_pushnumber(L, v); else lua_pushlstring(L, s, len);
}

static void push_bytea(lua_State *L, const char *s, size_t len)
{
    char *raw;
    size_t n;
    if (pg_text_bytea(s, len, &raw, &n) != 0) {
        lua_pushlstring(L, s, len);
        return;
    }
    lua_pushlstring(L, raw, n);
    free(raw);
}

static void push_timestamp(lua_State *L, const char *s, size_t len, int with_zone)
{
    char buf[64];
    size_t n;
    if (pg_text_timestamp(s, len, with_zone, buf, &n) == 0) lua_pushlstring(L, buf, n);
    else lua_pushlstring(L, s, len);
}

static void push_json(lua_State *L, const char *s, size_t len, int json_idx)
{
    if (!json_idx) { lua_pushlstring(L, s, len); return; }
    lua_pushvalue(L, json_idx);
    lua_pushlstring(L, s, len);
    if (lua_pcall(L, 1, 1, 0) != 0) {   /* beyond the decoder (too deep): the text */
        lua_pop(L, 1);
        lua_pushlstring(L, s, len);
    }
}

/* ---- arrays to lists: pg_array_read's events build the tables on the stack ---- */

typedef struct {
    lua_State *L;
    Oid elem;
    int json_idx;
    int depth;                   /* lists open: the innermost is on top */
    int count[PG_MAX_ARRAY_DEPTH + 1];   /* elements set in each open list */
} list_builder;

/* The value on top goes into the list below it as its next element. */
static void append(list_builder *b)
{
    lua_rawseti(b->L, -2, ++b->count[b->depth]);
}

static int list_open(void *ud)
{
    list_builder *b = ud;
    if (b->depth >= PG_MAX_ARRAY_DEPTH || !lua_checkstack(b->L, 4)) return -1;
    lua_newtable(b->L);
    b->count[++b->depth] = 0;
    return 0;
}

static int list_element(void *ud, const char *s, size_t n)
{
    list_builder *b = ud;
    if (s) pg_push_value(b->L, b->elem, s, n, b->json_idx);
    else lua_pushlightuserdata(b->L, NULL);
    append(b);
    return 0;
}

static int list_close(void *ud)
{
    list_builder *b = ud;
    if (--b->depth > 0) append(b);   /* a nested list is its parent's element */
    return 0;
}

static void push_array(lua_State *L, Oid elem, const char *s, size_t len, int json_idx)
{
    static const pg_array_reader reader = { list_open, list_element, list_close };
    list_builder b = { .L = L, .elem = elem, .json_idx = json_idx };
    int top = lua_gettop(L);
    if (pg_array_read(s, len, &reader, &b) != 0) {
        lua_settop(L, top);
        lua_pushlstring(L, s, len);
    }
}

void pg_push_value(lua_State *L, Oid type, const char *s, size_t len, int json_idx)
{
    switch (type) {
    case PG_INT2: case PG_INT4: case PG_INT8: case PG_OID: push_integer(L, s, len); return;
    case PG_FLOAT4: case PG_FLOAT8: push_float(L, s, len); return;
    case PG_BOOL: lua_pushboolean(L, len > 0 && s[0] == 't'); return;
    case PG_BYTEA: push_bytea(L, s, len); return;
    case PG_JSON: case PG_JSONB: push_json(L, s, len, json_idx); return;
    case PG_TIMESTAMP: push_timestamp(L, s, len, 0); return;
    case PG_TIMESTAMPTZ: push_timestamp(L, s, len, 1); return;
    default: break;
    }
    Oid elem = pg_array_elem(type);
    if (elem && len > 0) push_array(L, elem, s, len, json_idx);
    else lua_pushlstring(L, s, len);
}

/* ---- lists to array literals ------------------------------------------------ */

/* A growable buffer in C memory: the walk below pushes and pops Lua values,
 * which a luaL_Buffer (pieces kept on the stack) does not allow. */
typedef struct { char *p; size_t n, cap; int oom; } text_buf;

static void put(text_buf *b, const char *s, size_t len)
{
    if (b->oom) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void putc_(text_buf *b, char c) { put(b, &c, 1); }
static void puts_(text_buf *b, const char *s) { put(b, s, strlen(s)); }

static const char *add_element(lua_State *L, text_buf *b, int idx, Oid elem, int depth)
{
    char num[64];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        puts_(b, "NULL");
        return NULL;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx)) return "an array element is a userdata";
        puts_(b, "NULL");
        return NULL;
    case LUA_TBOOLEAN:
        puts_(b, lua_toboolean(L, idx) ? "t" : "f");
        return NULL;
    case LUA_TNUMBER:
        pg_format_number(lua_tonumber(L, idx), num, sizeof num);
        puts_(b, num);
        return NULL;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        putc_(b, '"');
        if (elem == PG_BYTEA) {
            static const char digits[] = "0123456789abcdef";
            puts_(b, "\\\\x");
            for (size_t i = 0; i < len; i++) {
                putc_(b, digits[(unsigned char)s[i] >> 4]);
                putc_(b, digits[(unsigned char)s[i] & 15]);
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                if (s[i] == '\0') return "an array element holds a NUL byte";
                if (s[i] == '"' || s[i] == '\\') putc_(b, '\\');
                putc_(b, s[i]);
            }
        }
        putc_(b, '"');
        return NULL;
    }
    case LUA_TTABLE: {
        if (depth >= PG_MAX_ARRAY_DEPTH || !lua_checkstack(L, 2)) return "arrays nest too deep";
        int n = (int)lua_objlen(L, idx);
        putc_(b, '{');
        for (int i = 1; i <= n; i++) {
            if (i > 1) putc_(b, ',');
            lua_rawgeti(L, idx, i);
            const char *why = add_element(L, b, lua_gettop(L), elem, depth + 1);
            lua_pop(L, 1);
            if (why) return why;
        }
        putc_(b, '}');
        return NULL;
    }
    default:
        return "an array element is not a string, number, boolean or table";
    }
}

const char *pg_push_array_literal(lua_State *L, int idx, Oid elem)
{
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    text_buf b = { 0 };
    const char *why = add_element(L, &b, idx, elem, 0);
    if (!why && b.oom) why = "out of memory";
    if (!why) lua_pushlstring(L, b.p, b.n);
    free(b.p);
    return why;
}
