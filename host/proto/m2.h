/* The Mongrel2 handler wire protocol (see docs/protocol.md): parsing request frames and
 * framing replies. Parsing is in place: the request's slices point into the frame,
 * and JSON string escapes are decoded in place (they only ever shrink), so the
 * frame buffer must be writable and must outlive the m2_request. */
#ifndef LUBECK_M2_H
#define LUBECK_M2_H

#include <stdint.h>
#include "slice.h"

#define M2_MAX_TARGETS 128       /* Mongrel2's limits.handler_targets */

typedef enum m2_encoding { M2_JSON, M2_TNETSTRING } m2_encoding;

typedef enum m2_kind {
    M2_HTTP,          /* a request to route */
    M2_DISCONNECT,    /* PATH "@*", body {"type":"disconnect"} */
    M2_CREDITS,       /* PATH "@*", body {"type":"credits"} */
    M2_NOTICE,        /* any other METHOD JSON message: logged, never routed */
} m2_kind;

/* One header. A repeated header (a JSON array / tnetstring list in the frame)
 * appears as several entries with the same key, in order. */
typedef struct m2_header {
    slice key, value;
} m2_header;

/* Header storage that the caller owns and reuses across requests; the parser grows
 * it with realloc when a frame has more headers than cap. */
typedef struct m2_headers {
    m2_header *v;
    int n, cap;
} m2_headers;

typedef struct m2_request {
    m2_kind kind;
    m2_encoding encoding;
    slice sender;            /* [A-Za-z0-9-]+ */
    uint32_t conn_id;
    slice path;              /* raw, as in the frame */
    slice body;
    m2_headers headers;      /* every header, Mongrel2's upper-case ones included */
    /* Mongrel2's own keys, picked out while parsing ("absent" = p NULL). The
     * match is exact and case-sensitive; a repeated key gives its first value. */
    slice method, version, uri, query, remote_addr, url_scheme, pattern;
    /* x-mongrel2-upload-start / -done. These are lower-case, so a client can send
     * them itself: Mongrel2 only overwrites them on a real upload. Check that the
     * path lies inside upload.temp_store before opening it. */
    slice upload_start, upload_done;
} m2_request;

/* Parses one frame "SENDER CONN_ID PATH LEN:HEADERS,LEN:BODY," (HEADERS as JSON
 * or as a tnetstring dict, detected from the frame). req->headers must be
 * initialised (zeroes are fine) and is reused. Returns 0, or -1 with *err set to a
 * short static description of what is wrong (also when realloc fails); after -1
 * the other fields of *req are unspecified but req->headers stays valid storage.
 * Header values that are JSON/tnetstring numbers, booleans or null are kept as
 * their raw text. kind: PATH "@*" is a notice, classified by the body's "type"
 * (any other or unreadable body: M2_NOTICE); elsewhere METHOD "JSON" is
 * M2_NOTICE; otherwise M2_HTTP, which requires METHOD. */
int m2_parse(char *frame, size_t len, m2_request *req, const char **err);

/* Looks up a header by name, ASCII case-insensitively; the first entry wins. */
const m2_header *m2_header_get(const m2_request *req, const char *name, size_t len);

void m2_headers_free(m2_headers *h);

/* Reply framing: "SENDER LEN:ID ID ID, " followed by the body. At most
 * M2_MAX_TARGETS ids (callers split larger lists). m2_reply_prefix_size gives the
 * exact size m2_reply_prefix writes. Both return 0 if n is 0 or > M2_MAX_TARGETS. */
size_t m2_reply_prefix_size(slice sender, const uint32_t *ids, int n);
size_t m2_reply_prefix(char *out, slice sender, const uint32_t *ids, int n);

#endif
