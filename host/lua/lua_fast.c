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

/* The first argument of every fast function: one per generation, a full
 * userdata of its Lua state (anchored in the core table), so that the scratch
 * buffer goes with the state. */
struct lbk_fast {
    lbk_gen *g;
    char *scratch;               /* decoded query values (fast_query_arg) */
    size_t scratch_cap;
};

/* The last value of name in the query string, decoded into the generation's
 * scratch buffer (valid until the next call: fast.lua copies it at once). */
static int fast_query_arg(struct lbk_fast *fs, double handle, const char *name, size_t name_len,
                          const char **value, size_t *value_len)
{
    lbk_req *r = host_req_from_handle(fs->g->host, handle);
    if (!r) return LUBECK_FAST_ENDED;
    slice q = r->m2.query;
    if (!q.p) return LUBECK_FAST_ABSENT;
    if (q.n > fs->scratch_cap) {
        char *grown = realloc(fs->scratch, q.n);
        if (!grown) return LUBECK_FAST_NO_MEMORY;
        fs->scratch = grown;
        fs->scratch_cap = q.n;
    }
    find_pair f = { .name = { name, name_len }, .first_wins = 0 };
    form_parse_urlencoded(q.p, q.n, fs->scratch, match_pair, &f);
    if (!f.found) return LUBECK_FAST_ABSENT;
    *value = f.value.p;
    *value_len = f.value.n;
    return LUBECK_FAST_FOUND;
}

/* The first cookie of that name (as req.cookies has it); the value points into
 * the request's frame. */
static int fast_cookie(struct lbk_fast *fs, double handle, const char *name, size_t name_len,
                       const char **value, size_t *value_len)
{
    lbk_req *r = host_req_from_handle(fs->g->host, handle);
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
static int fast_respond(struct lbk_fast *fs, double handle, int status, const char *body,
                        size_t body_len, int content_type)
{
    lubeck *h = fs->g->host;
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

static const char fast_key = 0;   /* the registry key of the lbk_fast */

static int fast_gc(lua_State *L)
{
    struct lbk_fast *fs = lua_touserdata(L, 1);
    free(fs->scratch);
    fs->scratch = NULL;
    fs->scratch_cap = 0;
    return 0;
}

void fast_open(lua_State *L, lbk_gen *g)
{
    lua_pushstring(L, fast_cdef);
    lua_setfield(L, -2, "cdef");
    lua_pushlightuserdata(L, (void *)&api);
    lua_setfield(L, -2, "api");
    struct lbk_fast *fs = lua_newuserdata(L, sizeof *fs);
    *fs = (struct lbk_fast){ .g = g };
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, fast_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pushlightuserdata(L, (void *)&fast_key);   /* anchored: it lives with the state */
    lua_insert(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_pushlightuserdata(L, fs);
    lua_setfield(L, -2, "gen");
}
