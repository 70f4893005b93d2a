/* A borrowed byte range: the parsers hand these out instead of copies. */
#ifndef LUBECK_SLICE_H
#define LUBECK_SLICE_H

#include <stddef.h>
#include <string.h>

typedef struct slice {
    const char *p;   /* NULL means "absent" (e.g. an optional capture that did not match) */
    size_t n;
} slice;

#define SLICE_LIT(s) ((slice){ (s), sizeof(s) - 1 })

static inline slice slice_make(const char *p, size_t n) { return (slice){ p, n }; }

static inline int slice_eq(slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.p && a.n == n && memcmp(a.p, lit, n) == 0;
}

#endif
