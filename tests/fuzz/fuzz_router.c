/* libFuzzer target for host/proto/router.c.
 *
 * The first input byte picks the mode:
 *   even: match the rest of the input as a path (second byte picks the method)
 *         against a fixed router of representative routes, built once;
 *   odd:  router_add the rest of the input (at most 200 bytes) as a pattern on a
 *         fresh router, which must either refuse it with a message or accept it
 *         and then match paths without trouble.
 * Besides "no crash", each match is checked against the contract in router.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

#define MAX_PATTERN 200

static const struct { const char *pattern; unsigned methods; } routes[] = {
    { "/", ROUTER_GET },
    { "/users/new", ROUTER_GET },
    { "/users/:id", ROUTER_GET },
    { "/users/:id", ROUTER_PUT | ROUTER_DELETE },
    { "/users/:id/posts/:post", ROUTER_ANY },
    { "/files/*path", ROUTER_GET | ROUTER_POST },
    { "/u/:id.json", ROUTER_GET },
    { "/a.b/c+d/(x)", ROUTER_ANY },
    { "/t/10:30/:/*", ROUTER_OPTIONS },
    { "^/hello/(\\w+)$", ROUTER_GET },
    { "^/hi/(?<name>[^/]+)/(\\d+)?$", ROUTER_POST | ROUTER_PATCH },
    { "^/p(/(\\d+))?$", ROUTER_ANY },
    { "^/static/", ROUTER_GET },
    { "^/(a|aa)+$", ROUTER_GET },          /* backtracks badly: exercises the limit */
    { "^/(?i)case/([a-z]*)x\\z", ROUTER_HEAD },
    { "^/bin/([\\x00-\\x1f\\x80-\\xff]+)$", ROUTER_OTHER },
};

static const unsigned methods[] = {
    ROUTER_GET, ROUTER_HEAD, ROUTER_POST, ROUTER_PUT, ROUTER_PATCH,
    ROUTER_DELETE, ROUTER_OPTIONS, ROUTER_OTHER,
};

static router *fixed;

static void build_fixed(void)
{
    char err[256];
    fixed = router_new();
    if (!fixed)
        abort();
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (router_add(fixed, routes[i].pattern, strlen(routes[i].pattern),
                       routes[i].methods, err, sizeof err) != (int)i)
            abort();   /* the fixed set itself is wrong */
}

/* Checks one result against what router.h promises. */
static void check(router *r, const char *path, size_t len, unsigned method,
                  router_result res, const router_match *m)
{
    switch (res) {
    case ROUTER_FOUND:
        if (m->route < 0 || m->route >= router_count(r))
            abort();
        if (m->ncaptures != router_ncaptures(r, m->route) || m->ncaptures > ROUTER_MAX_CAPTURES)
            abort();
        for (int i = 0; i < m->ncaptures; i++) {
            slice c = m->captures[i];
            if (!c.p) {
                if (c.n != 0)
                    abort();
                continue;
            }
            if (c.p < path || c.p > path + len || c.n > (size_t)(path + len - c.p))
                abort();
            const char *name = router_capture_name(r, m->route, i);
            if (name && strlen(name) > 32)
                abort();
        }
        break;
    case ROUTER_METHOD_NOT_ALLOWED:
        /* A route taking every method would have matched, and the one asked
         * for cannot be among those allowed (HEAD only via GET, which matches). */
        if (m->allowed == 0 || (m->allowed & method))
            abort();
        break;
    case ROUTER_NOT_FOUND:
        if (m->allowed != 0 || m->route != -1)
            abort();
        break;
    default:
        abort();
    }
}

static void match_checked(router *r, const char *path, size_t len, unsigned method)
{
    router_match m;
    router_result res = router_match_path(r, path, len, method, &m);
    check(r, path, len, method, res, &m);
}

static void try_pattern(const uint8_t *data, size_t size, unsigned route_methods)
{
    char err[128];
    /* A heap copy of exactly size bytes, so that ASan sees any read past it. */
    char *pat = malloc(size ? size : 1);
    router *r = router_new();
    if (!pat || !r)
        abort();
    memcpy(pat, data, size);
    memset(err, 'x', sizeof err);

    int idx = router_add(r, pat, size, route_methods, err, sizeof err);
    if (idx == -1) {
        if (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0')
            abort();   /* a refusal must come with a message */
        if (router_count(r) != 0)
            abort();
    } else {
        if (idx != 0 || router_count(r) != 1)
            abort();
        int n = router_ncaptures(r, 0);
        if (n < 0 || n > ROUTER_MAX_CAPTURES)
            abort();
        /* Any pattern text is also a plausible path. */
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
            match_checked(r, pat, size, methods[i]);
        match_checked(r, "/", 1, ROUTER_GET);
    }
    router_free(r);
    free(pat);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed)
        build_fixed();
    if (size < 1)
        return 0;

    if (data[0] & 1) {
        size_t n = size - 1 > MAX_PATTERN ? MAX_PATTERN : size - 1;
        /* The remaining bits of the mode byte choose the route's methods. */
        try_pattern(data + 1, n, (unsigned)(data[0] >> 1) & 0xff);
        return 0;
    }
    if (size < 2)
        return 0;
    unsigned method = methods[data[1] % (sizeof methods / sizeof methods[0])];
    match_checked(fixed, (const char *)data + 2, size - 2, method);
    return 0;
}
