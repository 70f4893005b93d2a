#include "lua_fast.h"

#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "reply.h"

/* The declarations as text for ffi.cdef (two steps, so that the macro is
 * expanded before it is turned into a string). */
#define FAST_STRING(...) #__VA_ARGS__
#define FAST_TEXT(...) FAST_STRING(__VA_ARGS__)
static const char fast_cdef[] = FAST_TEXT(LUBECK_FAST_DECLARATIONS);

typedef struct find_pair {
    slice name, value;
    int found, first_wins;
} find_pair;

static int match_pair(void *ud, slice name, slice value)
{
    find_pair *f = ud;
    if (name.n != f->name.n || memcmp(name.p, f->name.p, name.n) != 0) return 0;
    f->value = value;
    f->found = 1;
    return f->first_wins;   /* stop at the first, or go on to the last */
}

/* The last value of name in the query string, decoded into the host's scratch
 * buffer (valid until the next call: fast.lua copies it at once). */
static int fast_query_arg(lbk_gen *g, double handle, const char *name, size_t name_len,
                          const char **value, size_t *value_len)
{
    lubeck *h = g->host;
    lbk_req *r = host_req_from_handle(h, handle);
    if (!r) return LUBECK_FAST_ENDED;
    slice q = r->m2.query;
    if (!q.p) return LUBECK_FAST_ABSENT;
    if (q.n > h->scratch_cap) {
        char *grown = realloc(h->scratch, q.n);
        if (!grown) return LUBECK_FAST_NO_MEMORY;
        h->scratch = grown;
        h->scratch_cap = q.n;
    }
    find_pair f = { .name = { name, name_len }, .first_wins = 0 };
    form_parse_urlencoded(q.p, q.n, h->scratch, match_pair, &f);
    if (!f.found) return LUBECK_FAST_ABSENT;
    *value = f.value.p;
    *value_len = f.value.n;
    return LUBECK_FAST_FOUND;
}

/* The first cookie of that name (as req.cookies has it); the value points into
 * the request's frame. */
static int fast_cookie(lbk_gen *g, double handle, const char *name, size_t name_len,
                       const char **value, size_t *value_len)
{
    lbk_req *r = host_req_from_handle(g->host, handle);
    if (!r) return LUBECK_FAST_ENDED;
    find_pair f = { .name = { name, name_len }, .first_wins = 1 };
    m2_headers *hs = &r->m2.headers;
    for (int i = 0; i < hs->n && !f.found; i++) {
        m2_header *e = &hs->v[i];
        if (e->key.n == 6 && memcmp(e->key.p, "cookie", 6) == 0)
            form_parse_cookies(e->value.p, e->value.n, match_pair, &f);
    }
    if (!f.found) return LUBECK_FAST_ABSENT;
    *value = f.value.p;
    *value_len = f.value.n;
    return LUBECK_FAST_FOUND;
}

static const slice TYPE_HTML[] = { SLICE_LIT("Content-Type"), SLICE_LIT("text/html; charset=utf-8") };
static const slice TYPE_JSON[] = { SLICE_LIT("Content-Type"), SLICE_LIT("application/json") };

/* A whole response whose only header is a Content-Type (content_type, enum
 * lubeck_fast_type). 1 when sent, 0 when it could not be (the request ended or
 * already answered). Responses with headers of their own go through
 * core.respond. */
static int fast_respond(lbk_gen *g, double handle, int status, const char *body, size_t body_len,
                        int content_type)
{
    lubeck *h = g->host;
    lbk_req *r = host_req_from_handle(h, handle);
    if (!r || r->done || r->head_sent) return 0;
    reply_spec spec = {
        .status = status,
        .headers = content_type == LUBECK_FAST_JSON ? TYPE_JSON : TYPE_HTML,
        .nheaders = content_type != LUBECK_FAST_NO_TYPE,
    };
    host_reply_defaults(h, r, &spec);
    return host_respond(h, r, &spec, slice_make(body, body_len)) == 0;
}

/* Each function must have exactly the type its slot declares: under -Wall a
 * mismatch is only a warning in C, and in Lua a wrong call. */
#define FAST_SLOT_IS(slot, fn)                                                              \
    _Static_assert(__builtin_types_compatible_p(__typeof__(((lubeck_fast_api *)0)->slot),  \
                                                __typeof__(&fn)),                           \
                   "lubeck_fast_api." #slot " (lua_fast.h) and " #fn " (lua_fast.c) differ")
FAST_SLOT_IS(query_arg, fast_query_arg);
FAST_SLOT_IS(cookie, fast_cookie);
FAST_SLOT_IS(respond, fast_respond);

static const lubeck_fast_api api = {
    .query_arg = fast_query_arg,
    .cookie = fast_cookie,
    .respond = fast_respond,
};

void fast_open(lua_State *L, lbk_gen *g)
{
    lua_pushstring(L, fast_cdef);
    lua_setfield(L, -2, "fast_cdef");
    lua_pushlightuserdata(L, (void *)&api);
    lua_setfield(L, -2, "fast_api");
    lua_pushlightuserdata(L, g);
    lua_setfield(L, -2, "fast_gen");
}
