/* Routing: every route is one compiled PCRE2 pattern plus a method mask.
 *
 * Regex routes ('^...') go to PCRE2 as written, anchored at the start of the path.
 * Templates ("/users/:id") are first rewritten into a regex with named groups, so
 * both kinds share one matching path and one way of reporting captures.
 *
 * Matching runs once per request, so everything it needs is prepared here in
 * router_new/router_add: the compiled (and, when possible, JIT-compiled) code, the
 * capture names, and a single match-data block sized for ROUTER_MAX_CAPTURES that
 * every match reuses. That shared block is why a router must not be matched from
 * two threads at once. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

/* Every bit a route may name; anything above is a caller bug. */
#define ROUTER_ALL_BITS (ROUTER_GET | ROUTER_HEAD | ROUTER_POST | ROUTER_PUT | \
                         ROUTER_PATCH | ROUTER_DELETE | ROUTER_OPTIONS | ROUTER_OTHER)

/* PCRE2 10.42 refuses group names longer than this; templates check it up front so
 * the error can point into the template rather than into the generated regex. */
#define ROUTER_MAX_NAME 32

/* A pattern longer than this is surely a mistake; the cap keeps the template
 * rewrite's size arithmetic and the (int) lengths in error messages safe. */
#define ROUTER_MAX_PATTERN (64 * 1024)

/* Bounds the backtracking a single route may do on one path. Routes are trusted
 * but paths are not: a careless regex like ^/(a+)+$ must not let a client pin a
 * worker. A route that hits the limit simply does not match. */
#define ROUTER_MATCH_LIMIT 1000000

typedef struct route_entry {
    pcre2_code *code;
    unsigned methods;     /* ROUTER_ANY, or a mask with HEAD added wherever GET is */
    int ncaptures;
    int jit;              /* 1 when pcre2_jit_compile succeeded */
    const char **names;   /* ncaptures entries pointing into code's name table, or NULL
                             when the pattern has no named groups */
} route_entry;

struct router {
    route_entry *routes;
    int count, cap;
    pcre2_match_data *md;     /* shared by every match; see the top of the file */
    pcre2_match_context *mc;  /* carries ROUTER_MATCH_LIMIT */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

router *router_new(void)
{
    router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    /* +1: pair 0 is the whole match. */
    r->md = pcre2_match_data_create(ROUTER_MAX_CAPTURES + 1, NULL);
    r->mc = pcre2_match_context_create(NULL);
    if (!r->md || !r->mc)
        goto error;
    pcre2_set_match_limit(r->mc, ROUTER_MATCH_LIMIT);
    return r;
error:
    router_free(r);
    return NULL;
}

void router_free(router *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->count; i++) {
        pcre2_code_free(r->routes[i].code);
        free(r->routes[i].names);
    }
    free(r->routes);
    pcre2_match_data_free(r->md);
    pcre2_match_context_free(r->mc);
    free(r);
}

unsigned router_method_bit(const char *name, size_t len)
{
    static const struct { const char *name; size_t len; unsigned bit; } methods[] = {
        { "GET", 3, ROUTER_GET },         { "HEAD", 4, ROUTER_HEAD },
        { "POST", 4, ROUTER_POST },       { "PUT", 3, ROUTER_PUT },
        { "PATCH", 5, ROUTER_PATCH },     { "DELETE", 6, ROUTER_DELETE },
        { "OPTIONS", 7, ROUTER_OPTIONS },
    };
    if (!name)
        return ROUTER_OTHER;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (len == methods[i].len && memcmp(name, methods[i].name, len) == 0)
            return methods[i].bit;
    return ROUTER_OTHER;
}

static int is_name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(unsigned char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Rewrites a template into a regex in out (which must hold 6 * len + 8 bytes:
 * a literal byte costs at most 6, ":a" becomes the 11-byte "(?<a>[^/]+)", plus
 * the final "\z"). Returns the regex length, or -1 with err set. */
static long template_to_regex(const char *pat, size_t len, char *out,
                              char *err, size_t errlen)
{
    /* Where each name starts and how long it is, to refuse duplicates; a template
     * with more names than this would be refused for its captures anyway. */
    size_t name_at[ROUTER_MAX_CAPTURES + 1], name_len[ROUTER_MAX_CAPTURES + 1];
    int nnames = 0;
    char *o = out;

    for (size_t i = 0; i < len; ) {
        unsigned char c = (unsigned char)pat[i];
        if ((c == ':' || c == '*') && i + 1 < len && is_name_start((unsigned char)pat[i + 1])) {
            size_t start = i + 1, n = 1;
            while (start + n < len && is_name_char((unsigned char)pat[start + n]))
                n++;
            if (n > ROUTER_MAX_NAME) {
                set_err(err, errlen, "bad route pattern '%.*s': name at offset %zu is longer "
                        "than %d characters", (int)len, pat, start, ROUTER_MAX_NAME);
                return -1;
            }
            if (nnames == ROUTER_MAX_CAPTURES) {
                set_err(err, errlen, "bad route pattern '%.*s': more than %d captures",
                        (int)len, pat, ROUTER_MAX_CAPTURES);
                return -1;
            }
            for (int k = 0; k < nnames; k++) {
                if (name_len[k] == n && memcmp(pat + name_at[k], pat + start, n) == 0) {
                    set_err(err, errlen, "bad route pattern '%.*s': duplicate name '%.*s' "
                            "at offset %zu", (int)len, pat, (int)n, pat + start, start);
                    return -1;
                }
            }
            name_at[nnames] = start;
            name_len[nnames++] = n;
            o += sprintf(o, "(?<%.*s>%s)", (int)n, pat + start, c == ':' ? "[^/]+" : ".*");
            i = start + n;
            continue;
        }
        /* Letters, digits and these few punctuation marks mean nothing special to
         * PCRE2 outside a class; every other byte (including NUL and bytes >= 0x80)
         * is written as a hex escape, which is literal whatever it is. */
        if (is_name_char(c) || c == '/' || c == '-')
            *o++ = (char)c;
        else
            o += sprintf(o, "\\x{%02x}", c);
        i++;
    }
    memcpy(o, "\\z", 2);   /* the very end, not "before a final newline" as $ would be */
    o += 2;
    return (long)(o - out);
}

/* Fills rt->ncaptures and rt->names from the compiled code. */
static int read_captures(route_entry *rt, const char *pat, size_t len, char *err, size_t errlen)
{
    uint32_t ncap = 0, nnames = 0, entry = 0;
    PCRE2_SPTR table = NULL;

    pcre2_pattern_info(rt->code, PCRE2_INFO_CAPTURECOUNT, &ncap);
    if (ncap > ROUTER_MAX_CAPTURES) {
        set_err(err, errlen, "bad route pattern '%.*s': %u capture groups, at most %d allowed",
                (int)len, pat, (unsigned)ncap, ROUTER_MAX_CAPTURES);
        return -1;
    }
    rt->ncaptures = (int)ncap;
    pcre2_pattern_info(rt->code, PCRE2_INFO_NAMECOUNT, &nnames);
    if (nnames == 0)
        return 0;
    pcre2_pattern_info(rt->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(rt->code, PCRE2_INFO_NAMETABLE, &table);
    rt->names = calloc(ncap, sizeof *rt->names);
    if (!rt->names) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    /* Each entry: the group number, big-endian in two bytes, then the name, NUL-ended.
     * The strings live inside the code, so they last exactly as long as the route. */
    for (uint32_t i = 0; i < nnames; i++) {
        PCRE2_SPTR e = table + (size_t)i * entry;
        unsigned group = ((unsigned)e[0] << 8) | e[1];
        if (group >= 1 && group <= ncap)
            rt->names[group - 1] = (const char *)(e + 2);
    }
    return 0;
}

int router_add(router *r, const char *pattern, size_t len, unsigned methods,
               char *err, size_t errlen)
{
    route_entry rt = { 0 };
    char *regex = NULL;
    const char *src = pattern;
    size_t srclen = len;
    /* Paths are raw bytes, so never UTF mode: NEVER_UTF makes sure no pattern can
     * turn it on, since JIT-matching invalid UTF-8 in UTF mode is undefined.
     * DOLLAR_ENDONLY makes a user's '$' mean the end of the path, not "before a
     * trailing newline". */
    uint32_t opts = PCRE2_ANCHORED | PCRE2_NEVER_UTF | PCRE2_DOLLAR_ENDONLY;
    int ecode;
    PCRE2_SIZE eoff;

    if (err && errlen)
        err[0] = '\0';
    if (!r || (!pattern && len)) {
        set_err(err, errlen, "bad route: no router or no pattern");
        return -1;
    }
    if (!pattern)
        pattern = src = "";
    /* First, so that every (int)len below is safe. */
    if (len > ROUTER_MAX_PATTERN) {
        set_err(err, errlen, "bad route pattern: %zu bytes, at most %d allowed",
                len, ROUTER_MAX_PATTERN);
        return -1;
    }
    if (methods & ~(unsigned)ROUTER_ALL_BITS) {
        set_err(err, errlen, "bad route '%.*s': unknown method bits 0x%x",
                (int)len, pattern, methods & ~(unsigned)ROUTER_ALL_BITS);
        return -1;
    }

    if (len == 0 || pattern[0] != '^') {
        if (len == 0 || pattern[0] != '/') {
            set_err(err, errlen, "bad route pattern '%.*s': a path template must start "
                    "with '/' (or use '^' for a regex)", (int)len, pattern);
            return -1;
        }
        regex = malloc(6 * len + 8);
        if (!regex) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        long n = template_to_regex(pattern, len, regex, err, errlen);
        if (n < 0)
            goto error;
        src = regex;
        srclen = (size_t)n;
        /* ".*" in "*name" must also take any newline a decoded path may hold. */
        opts |= PCRE2_DOTALL;
    }

    rt.code = pcre2_compile((PCRE2_SPTR)src, srclen, opts, &ecode, &eoff, NULL);
    if (!rt.code) {
        char msg[256];
        pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof msg);
        /* A regex error's offset is in the user's pattern; a template should never
         * get here, and its offset would be into the rewrite, so it is left out. */
        if (regex)
            set_err(err, errlen, "bad route pattern '%.*s': %s", (int)len, pattern, msg);
        else
            set_err(err, errlen, "bad route pattern '%.*s': %s at offset %zu",
                    (int)len, pattern, msg, (size_t)eoff);
        goto error;
    }
    free(regex);
    regex = NULL;
    if (read_captures(&rt, pattern, len, err, errlen) < 0)
        goto error;
    /* JIT is an optimisation only: where it is unavailable (no JIT support built in,
     * or no executable memory allowed) the interpreter gives the same answers. */
    rt.jit = pcre2_jit_compile(rt.code, PCRE2_JIT_COMPLETE) == 0;
    rt.methods = methods;
    if (rt.methods & ROUTER_GET)
        rt.methods |= ROUTER_HEAD;

    if (r->count == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        route_entry *grown = realloc(r->routes, (size_t)cap * sizeof *grown);
        if (!grown) {
            set_err(err, errlen, "out of memory");
            goto error;
        }
        r->routes = grown;
        r->cap = cap;
    }
    r->routes[r->count] = rt;
    return r->count++;

error:
    free(regex);
    free(rt.names);
    pcre2_code_free(rt.code);
    return -1;
}

int router_count(const router *r)
{
    return r ? r->count : 0;
}

int router_ncaptures(const router *r, int route)
{
    if (!r || route < 0 || route >= r->count)
        return -1;
    return r->routes[route].ncaptures;
}

const char *router_capture_name(const router *r, int route, int i)
{
    if (!r || route < 0 || route >= r->count)
        return NULL;
    const route_entry *rt = &r->routes[route];
    if (!rt->names || i < 0 || i >= rt->ncaptures)
        return NULL;
    return rt->names[i];
}

/* Runs one route's pattern on the path; returns PCRE2's result (> 0 on a match).
 * Errors such as the match limit count as "no match". */
static int run(router *r, const route_entry *rt, const char *path, size_t len)
{
    if (rt->jit)
        return pcre2_jit_match(rt->code, (PCRE2_SPTR)path, len, 0, 0, r->md, r->mc);
    return pcre2_match(rt->code, (PCRE2_SPTR)path, len, 0, 0, r->md, r->mc);
}

static int allows(const route_entry *rt, unsigned method_bit)
{
    return rt->methods == ROUTER_ANY || (rt->methods & method_bit);
}

router_result router_match_path(router *r, const char *path, size_t len,
                                unsigned method_bit, router_match *m)
{
    m->route = -1;
    m->ncaptures = 0;
    m->allowed = 0;
    if (!r)
        return ROUTER_NOT_FOUND;
    if (!path) {   /* PCRE2 wants a non-NULL subject even when it is empty */
        path = "";
        len = 0;
    }

    /* First pass: only routes that take this method are worth running. */
    for (int i = 0; i < r->count; i++) {
        const route_entry *rt = &r->routes[i];
        if (!allows(rt, method_bit))
            continue;
        int rc = run(r, rt, path, len);
        if (rc <= 0)
            continue;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        m->route = i;
        m->ncaptures = rt->ncaptures;
        for (int k = 0; k < rt->ncaptures; k++) {
            PCRE2_SIZE s = ov[2 * (k + 1)], e = ov[2 * (k + 1) + 1];
            /* Groups past rc did not take part; the bounds test is belt and braces. */
            if (k + 1 < rc && s != PCRE2_UNSET && s <= e && e <= len)
                m->captures[k] = slice_make(path + s, e - s);
            else
                m->captures[k] = slice_make(NULL, 0);
        }
        return ROUTER_FOUND;
    }

    /* Nothing took the method. The rest can only tell 404 from 405, and what the
     * Allow header lists; skip routes that would add no new bit. */
    for (int i = 0; i < r->count; i++) {
        const route_entry *rt = &r->routes[i];
        if (allows(rt, method_bit) || (rt->methods & ~m->allowed) == 0)
            continue;
        if (run(r, rt, path, len) > 0)
            m->allowed |= rt->methods;
    }
    return m->allowed ? ROUTER_METHOD_NOT_ALLOWED : ROUTER_NOT_FOUND;
}
