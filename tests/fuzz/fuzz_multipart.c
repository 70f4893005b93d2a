/* libFuzzer target for the multipart/form-data parser. Input: the first line is
 * the Content-Type value, the rest is the body. Every slice a part reports must
 * lie inside the body (or the part's own name buffers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

typedef struct bounds {
    const char *lo, *hi;
    int parts;
} bounds;

static void inside(const bounds *b, const multipart_part *p, slice s, const char *buf)
{
    if (!s.p) return;
    int in_body = s.p >= b->lo && s.p + s.n <= b->hi;
    int in_buf = s.p >= buf && s.p + s.n <= buf + MULTIPART_MAX_NAME;
    if (!in_body && !in_buf) abort();
    (void)p;
}

static int check(void *ud, const multipart_part *p)
{
    bounds *b = ud;
    if (!p->name.p) abort();
    inside(b, p, p->name, p->name_buf);
    inside(b, p, p->filename, p->filename_buf);
    inside(b, p, p->content_type, p->name_buf);
    inside(b, p, p->body, p->name_buf);
    if (p->body.p < b->lo || p->body.p + p->body.n > b->hi) abort();
    b->parts++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t clen = nl ? (size_t)(nl - s) : size;
    /* a copy of exactly the body, so reads past it are caught */
    size_t blen = nl ? size - clen - 1 : 0;
    char *body = malloc(blen ? blen : 1);
    if (blen) memcpy(body, nl + 1, blen);
    slice boundary;
    if (multipart_boundary(s, clen, &boundary) == 0) {
        if (boundary.n < 1 || boundary.n > 70) abort();
        bounds b = { body, body + blen, 0 };
        const char *err = NULL;
        int n = multipart_parse(body, blen, boundary, check, &b, &err);
        if (n < 0 && !err) abort();
        if (n >= 0 && n != b.parts) abort();
    }
    free(body);
    return 0;
}
