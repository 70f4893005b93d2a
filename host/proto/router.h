/* Routing: an ordered list of PCRE2 patterns (JIT-compiled) with allowed methods.
 * A pattern starting with '^' is a regular expression anchored at the start of
 * the path; any other pattern is a path template ("/users/:id"; "*rest" takes the
 * rest of the path) compiled to an anchored regex with named groups, matching the
 * whole path. */
#ifndef LUBECK_ROUTER_H
#define LUBECK_ROUTER_H

#include "slice.h"

#define ROUTER_MAX_CAPTURES 32

/* Method bits. ROUTER_ANY (0) means every method. */
enum {
    ROUTER_GET = 1 << 0, ROUTER_HEAD = 1 << 1, ROUTER_POST = 1 << 2, ROUTER_PUT = 1 << 3,
    ROUTER_PATCH = 1 << 4, ROUTER_DELETE = 1 << 5, ROUTER_OPTIONS = 1 << 6,
    ROUTER_OTHER = 1 << 7,     /* any method not named above (request side only) */
    ROUTER_ANY = 0
};

typedef struct router router;

typedef enum router_result {
    ROUTER_FOUND,
    ROUTER_NOT_FOUND,            /* no pattern matches the path */
    ROUTER_METHOD_NOT_ALLOWED    /* patterns match, but none allows the method */
} router_result;

typedef struct router_match {
    int route;                           /* index returned by router_add */
    int ncaptures;
    slice captures[ROUTER_MAX_CAPTURES]; /* into the matched path; p NULL = group unset */
    unsigned allowed;                    /* for METHOD_NOT_ALLOWED: union of the method
                                            bits of the routes whose pattern matched */
} router_match;

router *router_new(void);
void router_free(router *r);

/* Maps a method name to its bit (ROUTER_OTHER for unknown names). */
unsigned router_method_bit(const char *name, size_t len);

/* Adds a route; returns its index (0, 1, ...) or -1 with a message in err
 * (e.g. "bad route pattern '^/(': missing closing parenthesis at offset 3").
 * pattern need not be NUL-terminated; len counts. */
int router_add(router *r, const char *pattern, size_t len, unsigned methods,
               char *err, size_t errlen);

int router_count(const router *r);
int router_ncaptures(const router *r, int route);
/* Name of capture group i (0-based) of a route, or NULL when the group is unnamed. */
const char *router_capture_name(const router *r, int route, int i);

/* First route whose pattern matches path and whose methods allow method_bit wins.
 * A GET route also matches HEAD. */
router_result router_match_path(router *r, const char *path, size_t len,
                                unsigned method_bit, router_match *m);

#endif
