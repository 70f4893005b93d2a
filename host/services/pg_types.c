/* Values between PostgreSQL's text format and Lua. Results arrive as text
 * (the session is ISO dates in UTC, see pg.c); each is converted by its type:
 * integers to numbers (int8 past 2^53 stays a string, a double would round
 * it), floats to numbers, numeric stays a string (exact), bool, bytea to the
 * raw bytes, json/jsonb decoded, timestamps to RFC 3339, arrays to lists (a
 * NULL element is the lightuserdata NULL, which is cjson.null). Anything else
 * is its text. */
#include "pg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ARRAY_DEPTH 8

Oid pg_array_elem(Oid oid)
{
    switch (oid) {
    case 1000: return PG_BOOL;
    case 1001: return PG_BYTEA;
    case 1005: return PG_INT2;
    case 1007: return PG_INT4;
    case 1016: return PG_INT8;
    case 1028: return PG_OID;
    case 1021: return PG_FLOAT4;
    case 1022: return PG_FLOAT8;
    case 1231: return PG_NUMERIC;
    case 199: return PG_JSON;
    case 3807: return PG_JSONB;
    case 1115: return PG_TIMESTAMP;
    case 1185: return PG_TIMESTAMPTZ;
    case 1009: return PG_TEXT;          /* text[] */
    case 1002: case 1003: case 1014: case 1015: case 1182: case 1183: case 1187:
    case 1270: case 2951:               /* char name bpchar varchar date time interval timetz uuid */
        return PG_TEXT;
    default: return 0;
    }
}

static void push_integer(lua_State *L, const char *s, size_t len)
{
    char buf[32];
    if (len >= sizeof buf) { lua_pushlstring(L, s, len); return; }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    /* Past 2^53 a double no longer holds every integer: keep the digits. */
    if (*end || end == buf || v > (1LL << 53) || v < -(1LL << 53)) lua_pushlstring(L, s, len);
    else lua_pushnumber(L, (lua_Number)v);
}

static void push_float(lua_State *L, const char *s, size_t len)
{
    char buf[64];
    if (len >= sizeof buf) { lua_pushlstring(L, s, len); return; }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);   /* also NaN, Infinity, -Infinity */
    if (*end || end == buf) lua_pushlstring(L, s, len); else lua_pushnumber(L, v);
}

static int hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* bytea_output = hex: "\x0a1b..."; the older escape format goes to libpq. */
static void push_bytea(lua_State *L, const char *s, size_t len)
{
    if (len >= 2 && s[0] == '\\' && s[1] == 'x' && len % 2 == 0) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 2; i < len; i += 2) {
            int hi = hex(s[i]), lo = hex(s[i + 1]);
            if (hi < 0 || lo < 0) { luaL_pushresult(&b); lua_pop(L, 1); lua_pushlstring(L, s, len); return; }
            luaL_addchar(&b, (char)(hi << 4 | lo));
        }
        luaL_pushresult(&b);
        return;
    }
    char *z = malloc(len + 1);
    if (!z) { lua_pushlstring(L, s, len); return; }
    memcpy(z, s, len);
    z[len] = '\0';
    size_t n;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)z, &n);
    free(z);
    if (raw) lua_pushlstring(L, (const char *)raw, n); else lua_pushlstring(L, s, len);
    PQfreemem(raw);
}

/* "2024-01-02 03:04:05.5+00" → "2024-01-02T03:04:05.5Z"; an offset such as
 * "+05:30" or "-08" becomes "+05:30" / "-08:00". "infinity" and BC dates stay
 * as they are. */
static void push_timestamp(lua_State *L, const char *s, size_t len, int with_zone)
{
    const char *sp = memchr(s, ' ', len);
    char buf[64];
    if (!sp || len + 4 >= sizeof buf || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
        lua_pushlstring(L, s, len);
        return;
    }
    memcpy(buf, s, len);
    buf[sp - s] = 'T';
    size_t n = len;
    if (with_zone) {
        size_t z = n;
        while (z > (size_t)(sp - s) && buf[z - 1] != '+' && buf[z - 1] != '-') z--;
        size_t zlen = n - z;   /* after the sign: "00", "05:30", "05:30:15" */
        if (z > (size_t)(sp - s) && zlen >= 2) {
            if (zlen == 2 && buf[z] == '0' && buf[z + 1] == '0') {
                buf[z - 1] = 'Z';
                n = z;
            } else if (zlen == 2) {
                memcpy(buf + n, ":00", 3);
                n += 3;
            }
        }
    }
    lua_pushlstring(L, buf, n);
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

/* ---- arrays: {1,2,NULL}, {{1,2},{3,4}}, {"a b","with \"quotes\""} ------------ */

typedef struct {
    const char *p, *end;
    Oid elem;
    int json_idx;
    char *scratch;               /* a quoted element without its escapes */
} array_reader;

static void skip_space(array_reader *a)
{
    while (a->p < a->end && (*a->p == ' ' || *a->p == '\t' || *a->p == '\n' || *a->p == '\r')) a->p++;
}

static int read_list(lua_State *L, array_reader *a, int depth);

static int read_element(lua_State *L, array_reader *a, int depth)
{
    skip_space(a);
    if (a->p >= a->end) return -1;
    if (*a->p == '{') return read_list(L, a, depth + 1);
    if (*a->p == '"') {
        size_t n = 0;
        for (a->p++; a->p < a->end && *a->p != '"'; a->p++) {
            if (*a->p == '\\') {
                if (++a->p >= a->end) return -1;
            }
            a->scratch[n++] = *a->p;
        }
        if (a->p >= a->end) return -1;
        a->p++;
        pg_push_value(L, a->elem, a->scratch, n, a->json_idx);
        return 0;
    }
    const char *start = a->p;
    while (a->p < a->end && *a->p != ',' && *a->p != '}') a->p++;
    const char *stop = a->p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t')) stop--;
    if (stop == start) return -1;
    if (stop - start == 4 && strncasecmp(start, "NULL", 4) == 0) lua_pushlightuserdata(L, NULL);
    else pg_push_value(L, a->elem, start, (size_t)(stop - start), a->json_idx);
    return 0;
}

static int read_list(lua_State *L, array_reader *a, int depth)
{
    if (depth > MAX_ARRAY_DEPTH || !lua_checkstack(L, 4)) return -1;
    a->p++;   /* '{' */
    lua_newtable(L);
    skip_space(a);
    if (a->p < a->end && *a->p == '}') { a->p++; return 0; }
    for (int i = 1;; i++) {
        if (read_element(L, a, depth) != 0) { lua_pop(L, 1); return -1; }
        lua_rawseti(L, -2, i);
        skip_space(a);
        if (a->p >= a->end) { lua_pop(L, 1); return -1; }
        if (*a->p == '}') { a->p++; return 0; }
        if (*a->p != ',') { lua_pop(L, 1); return -1; }
        a->p++;
    }
}

static void push_array(lua_State *L, Oid elem, const char *s, size_t len, int json_idx)
{
    array_reader a = { s, s + len, elem, json_idx, malloc(len + 1) };
    if (!a.scratch) { lua_pushlstring(L, s, len); return; }
    /* "[0:1]={1,2}": explicit bounds come first; Lua lists start at 1 anyway */
    if (a.p < a.end && *a.p == '[') {
        const char *eq = memchr(a.p, '=', len);
        a.p = eq ? eq + 1 : a.end;
    }
    int top = lua_gettop(L);
    int ok = a.p < a.end && *a.p == '{' && read_list(L, &a, 1) == 0;
    if (ok) { skip_space(&a); ok = a.p == a.end; }
    free(a.scratch);
    if (!ok) {
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

/* ---- parameters ------------------------------------------------------------ */

void pg_format_number(lua_Number x, char *out, size_t len)
{
    if (x != x) { snprintf(out, len, "NaN"); return; }
    if (isinf(x)) { snprintf(out, len, x > 0 ? "Infinity" : "-Infinity"); return; }
    if (x == floor(x) && fabs(x) < 9.2e18) { snprintf(out, len, "%.0f", x); return; }
    for (int digits = 15; digits <= 17; digits++) {   /* the shortest that reads back */
        snprintf(out, len, "%.*g", digits, x);
        if (strtod(out, NULL) == x) return;
    }
}

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
        if (depth >= MAX_ARRAY_DEPTH || !lua_checkstack(L, 2)) return "arrays nest too deep";
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
