#include "lua_fast.h"

#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "reply.h"

/* Mirrors the lubeck_fast_api declaration in lua/lubeck/fast.lua. */
typedef struct fast_api {
    int (*query_arg)(lbk_gen *g, double handle, const char *name, size_t name_len,
                     const char **value, size_t *value_len);
    int (*cookie)(lbk_gen *g, double handle, const char *name, size_t name_len,
                  const char **value, size_t *value_len);
    int (*respond)(lbk_gen *g, double handle, int status, const char *body, size_t body_len,
                   int content_type);
} fast_api;

enum { FAST_NO_MEMORY = -2, FAST_ENDED = -1, FAST_ABSENT = 0, FAST_FOUND = 1 };

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
    if (!r) return FAST_ENDED;
    slice q = r->m2.query;
    if (!q.p) return FAST_ABSENT;
    if (q.n > h->scratch_cap) {
        char *grown = realloc(h->scratch, q.n);
        if (!grown) return FAST_NO_MEMORY;
        h->scratch = grown;
        h->scratch_cap = q.n;
    }
    find_pair f = { .name = { name, name_len }, .first_wins = 0 };
    form_parse_urlencoded(q.p, q.n, h->scratch, match_pair, &f);
    if (!f.found) return FAST_ABSENT;
    *value = f.value.p;
    *value_len = f.value.n;
    return FAST_FOUND;
}

/* The first cookie of that name (as req.cookies has it); the value points into
 * the request's frame. */
static int fast_cookie(lbk_gen *g, double handle, const char *name, size_t name_len,
                       const char **value, size_t *value_len)
{
    lbk_req *r = host_req_from_handle(g->host, handle);
    if (!r) return FAST_ENDED;
    find_pair f = { .name = { name, name_len }, .first_wins = 1 };
    m2_headers *hs = &r->m2.headers;
    for (int i = 0; i < hs->n && !f.found; i++) {
        m2_header *e = &hs->v[i];
        if (e->key.n == 6 && memcmp(e->key.p, "cookie", 6) == 0)
            form_parse_cookies(e->value.p, e->value.n, match_pair, &f);
    }
    if (!f.found) return FAST_ABSENT;
    *value = f.value.p;
    *value_len = f.value.n;
    return FAST_FOUND;
}

static const slice TYPE_HTML[] = { SLICE_LIT("Content-Type"), SLICE_LIT("text/html; charset=utf-8") };
static const slice TYPE_JSON[] = { SLICE_LIT("Content-Type"), SLICE_LIT("application/json") };

/* A whole response whose only header is a Content-Type (content_type 1: HTML,
 * 2: JSON, 0: none). 1 when sent, 0 when it could not be (the request ended or
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
        .headers = content_type == 2 ? TYPE_JSON : TYPE_HTML,
        .nheaders = content_type ? 1 : 0,
    };
    host_reply_defaults(h, r, &spec);
    return host_respond(h, r, &spec, slice_make(body, body_len)) == 0;
}

static const fast_api api = { fast_query_arg, fast_cookie, fast_respond };

void fast_open(lua_State *L, lbk_gen *g)
{
    lua_pushlightuserdata(L, (void *)&api);
    lua_setfield(L, -2, "fast_api");
    lua_pushlightuserdata(L, g);
    lua_setfield(L, -2, "fast_gen");
}
