/* HTTP/1.1 response heads, built in one pass into a caller's buffer: the status
 * line with its reason phrase, Date, the handler's headers (refused when a name
 * or value holds CR or LF), Content-Length or chunked, Connection. */
#ifndef LUBECK_REPLY_H
#define LUBECK_REPLY_H

#include "slice.h"

typedef enum reply_conn { REPLY_CONN_NONE, REPLY_CONN_CLOSE, REPLY_CONN_KEEP_ALIVE } reply_conn;

typedef struct reply_spec {
    int status;
    int http10;                  /* answer "HTTP/1.0" (to a 1.0 request) */
    const slice *headers;        /* name, value, name, value, ... */
    int nheaders;                /* pairs */
    size_t content_length;       /* ignored when chunked */
    int chunked;                 /* streaming head: Transfer-Encoding: chunked */
    int until_close;             /* streaming to HTTP/1.0: no length, the close ends it */
    reply_conn conn;
    double now;                  /* wall-clock seconds, for Date */
} reply_spec;

/* Reason phrase of a status ("Not Found"), or "Unknown" for codes without one. */
const char *reply_reason(int status);
/* Statuses that never carry a body or Content-Length: 1xx, 204, 304. */
int reply_status_has_body(int status);
/* 1 when the header may be sent: a non-empty token name, no CR/LF/NUL in the value. */
int reply_header_ok(slice name, slice value);
/* Headers the host writes itself; a handler's copies of these are skipped. */
int reply_header_reserved(slice name);
/* Exact size of the head reply_write_head writes (through the blank line). */
size_t reply_head_size(const reply_spec *s);
size_t reply_write_head(char *out, const reply_spec *s);

#endif
