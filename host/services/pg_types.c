/* PostgreSQL's text formats read into C values. Results arrive as text (the
 * session is ISO dates in UTC, see pg.c); the binding (lua_pg_types.c) turns
 * each into a Lua value by its type with these readers, and keeps the text
 * when one says it is not of its shape. */
#include "pg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int pg_text_integer(const char *s, size_t len, double *out)
{
    char buf[32];
    if (len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    /* Past 2^53 a double no longer holds every integer: keep the digits. */
    if (*end || end == buf || v > (1LL << 53) || v < -(1LL << 53)) return -1;
    *out = (double)v;
    return 0;
}

int pg_text_float(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    double v = strtod(buf, &end);   /* also NaN, Infinity, -Infinity */
    if (*end || end == buf) return -1;
    *out = v;
    return 0;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* bytea_output = hex: "\x0a1b..."; the older escape format goes to libpq. */
int pg_text_bytea(const char *s, size_t len, char **out, size_t *n)
{
    if (len >= 2 && s[0] == '\\' && s[1] == 'x' && len % 2 == 0) {
        char *raw = malloc(len / 2 + 1);   /* (+1: never malloc(0)) */
        if (!raw) return -1;
        for (size_t i = 2; i < len; i += 2) {
            int hi = hex(s[i]), lo = hex(s[i + 1]);
            if (hi < 0 || lo < 0) { free(raw); return -1; }
            raw[i / 2 - 1] = (char)(hi << 4 | lo);
        }
        *out = raw;
        *n = len / 2 - 1;
        return 0;
    }
    char *z = malloc(len + 1);
    if (!z) return -1;
    memcpy(z, s, len);
    z[len] = '\0';
    size_t rawlen;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)z, &rawlen);
    free(z);
    if (!raw) return -1;
    *out = malloc(rawlen + 1);
    if (*out) memcpy(*out, raw, rawlen);
    PQfreemem(raw);
    if (!*out) return -1;
    *n = rawlen;
    return 0;
}

/* "2024-01-02 03:04:05.5+00" → "2024-01-02T03:04:05.5Z"; an offset such as
 * "+05:30" or "-08" becomes "+05:30" / "-08:00". "infinity" and BC dates stay
 * as they are. */
int pg_text_timestamp(const char *s, size_t len, int with_zone, char buf[64], size_t *out_len)
{
    const char *sp = memchr(s, ' ', len);
    if (!sp || len + 4 >= 64 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) return -1;
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
    *out_len = n;
    return 0;
}

/* ---- arrays: {1,2,NULL}, {{1,2},{3,4}}, {"a b","with \"quotes\""} ------------ */

typedef struct {
    const char *p, *end;
    const pg_array_reader *r;
    void *ud;
    char *scratch;               /* a quoted element without its escapes */
} array_reader;

static void skip_space(array_reader *a)
{
    while (a->p < a->end && (*a->p == ' ' || *a->p == '\t' || *a->p == '\n' || *a->p == '\r')) a->p++;
}

static int read_list(array_reader *a, int depth);

static int read_element(array_reader *a, int depth)
{
    skip_space(a);
    if (a->p >= a->end) return -1;
    if (*a->p == '{') return read_list(a, depth + 1);
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
        return a->r->element(a->ud, a->scratch, n);
    }
    const char *start = a->p;
    while (a->p < a->end && *a->p != ',' && *a->p != '}') a->p++;
    const char *stop = a->p;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t')) stop--;
    if (stop == start) return -1;
    if (stop - start == 4 && strncasecmp(start, "NULL", 4) == 0) return a->r->element(a->ud, NULL, 0);
    return a->r->element(a->ud, start, (size_t)(stop - start));
}

static int read_list(array_reader *a, int depth)
{
    if (depth > PG_MAX_ARRAY_DEPTH || a->r->open(a->ud) != 0) return -1;
    a->p++;   /* '{' */
    skip_space(a);
    if (a->p < a->end && *a->p == '}') {
        a->p++;
        return a->r->close(a->ud);
    }
    for (;;) {
        if (read_element(a, depth) != 0) return -1;
        skip_space(a);
        if (a->p >= a->end) return -1;
        if (*a->p == '}') {
            a->p++;
            return a->r->close(a->ud);
        }
        if (*a->p != ',') return -1;
        a->p++;
    }
}

int pg_array_read(const char *s, size_t len, const pg_array_reader *r, void *ud)
{
    array_reader a = { s, s + len, r, ud, malloc(len + 1) };
    if (!a.scratch) return -1;
    /* "[0:1]={1,2}": explicit bounds come first; Lua lists start at 1 anyway */
    if (a.p < a.end && *a.p == '[') {
        const char *eq = memchr(a.p, '=', len);
        a.p = eq ? eq + 1 : a.end;
    }
    int ok = a.p < a.end && *a.p == '{' && read_list(&a, 1) == 0;
    if (ok) {
        skip_space(&a);
        ok = a.p == a.end;
    }
    free(a.scratch);
    return ok ? 0 : -1;
}

/* ---- parameters ------------------------------------------------------------ */

void pg_format_number(double x, char *out, size_t len)
{
    if (x != x) { snprintf(out, len, "NaN"); return; }
    if (isinf(x)) { snprintf(out, len, x > 0 ? "Infinity" : "-Infinity"); return; }
    if (x == floor(x) && fabs(x) < 9.2e18) { snprintf(out, len, "%.0f", x); return; }
    for (int digits = 15; digits <= 17; digits++) {   /* the shortest that reads back */
        snprintf(out, len, "%.*g", digits, x);
        if (strtod(out, NULL) == x) return;
    }
}
