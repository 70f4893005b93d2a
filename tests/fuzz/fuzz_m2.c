/* libFuzzer target for m2_parse, m2_header_get and the reply prefix: no input may
 * crash the parser or make it read outside the frame, and what it returns must
 * point inside the frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m2.h"

/* One request reused across inputs, as the host does, so header-array growth and
 * reuse get exercised too. */
static m2_request request;

static void assert_inside(slice s, const char *lo, const char *hi)
{
    if (s.p && (s.p < lo || s.p + s.n > hi))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser decodes in place, so it gets a writable copy of exactly size
     * bytes: any read past the end is an ASan report. */
    char *frame = malloc(size ? size : 1);
    if (!frame)
        return 0;
    memcpy(frame, data, size);

    const char *err = NULL;
    if (m2_parse(frame, size, &request, &err) != 0) {
        if (!err)
            abort();
        free(frame);
        return 0;
    }

    const char *end = frame + size;
    m2_request *r = &request;
    slice fields[] = { r->sender, r->path, r->body, r->method, r->version, r->uri,
                       r->query, r->remote_addr, r->url_scheme, r->pattern,
                       r->upload_start, r->upload_done };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        assert_inside(fields[i], frame, end);
    if (r->kind == M2_HTTP && !r->method.p)
        abort();

    for (int i = 0; i < r->headers.n; i++) {
        assert_inside(r->headers.v[i].key, frame, end);
        assert_inside(r->headers.v[i].value, frame, end);
        /* Every key must find an entry (the first with that name). */
        const m2_header *h = m2_header_get(r, r->headers.v[i].key.p, r->headers.v[i].key.n);
        if (!h || h > &r->headers.v[i])
            abort();
    }
    (void)m2_header_get(r, "content-type", 12);
    (void)m2_header_get(r, "HOST", 4);

    /* Frame a reply to the sender and check the size promise. */
    uint32_t ids[3] = { r->conn_id, 0, UINT32_MAX };
    size_t want = m2_reply_prefix_size(r->sender, ids, 3);
    char *out = malloc(want);
    if (out && m2_reply_prefix(out, r->sender, ids, 3) != want)
        abort();
    free(out);

    free(frame);
    return 0;
}
