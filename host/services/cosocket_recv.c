/* The receive side of a connection: one buffer, filled a chunk at a time from
 * the transport, and the patterns that take from it: a line, all, n bytes,
 * whatever is there (receiveany), up to a pattern (receiveuntil, on the
 * matcher of cosocket_until.c). Each answers with a span of the buffer; the
 * caller turns it into values (host/lua/lua_cosocket_recv.c). */
#define _GNU_SOURCE
#include "cosocket.h"

#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 65536

static int buf_reserve(lbk_conn *c, size_t want)
{
    if (c->off > 0 && c->off == c->len) c->off = c->len = 0;
    if (c->cap - c->len >= want) return 0;
    if (c->off > 0) {   /* compact before growing */
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
        if (c->cap - c->len >= want) return 0;
    }
    size_t cap = c->cap ? c->cap : READ_CHUNK;
    while (cap - c->len < want) cap *= 2;
    char *grown = realloc(c->buf, cap);
    if (!grown) return -1;
    c->buf = grown;
    c->cap = cap;
    return 0;
}

/* Reads what the socket has: 1 if anything arrived (or the end), 0 to wait
 * (*events), -1 on error (*err). */
static int fill(lbk_conn *c, int *events, const char **err)
{
    if (buf_reserve(c, READ_CHUNK) != 0) { *err = "out of memory"; return -1; }
    ssize_t n = conn_transport_recv(c, c->buf + c->len, c->cap - c->len, events, err);
    if (n > 0) { c->len += (size_t)n; return 1; }
    if (n == 0) { c->eof = 1; return 1; }
    return n == -1 ? 0 : -1;
}

/* n bytes from the front of the buffer as *out, then skip more consumed. */
static int take(lbk_conn *c, slice *out, size_t n, size_t skip)
{
    out->p = c->buf + c->off;
    out->n = n;
    c->off += n + skip;
    return CONN_RECV_DATA;
}

/* receiveuntil's step: the data before the pattern (and the pattern, when
 * inclusive); with a size, chunks of at most that many bytes, then the end. */
static int try_until(lbk_conn *c, slice *out)
{
    lbk_conn_recv *r = &c->recv;
    const char *data = c->buf + c->off;
    size_t have = c->len - c->off, safe;
    long at = cosocket_until_find(data, have, r->pat, r->plen, r->from, &safe);
    size_t size = r->want;
    if (at >= 0) {
        size_t before = (size_t)at;
        if (size && before > size) return take(c, out, size, 0);   /* the pattern still ahead */
        size_t with = r->inclusive ? r->plen : 0;
        if (size && before + with == 0) {   /* nothing left before it: the end */
            c->off += r->plen;
            return CONN_RECV_END;
        }
        take(c, out, before + with, r->plen - with);
        if (size && r->ended) *r->ended = 1;
        return CONN_RECV_DATA;
    }
    if (size && safe >= size) return take(c, out, size, 0);
    r->from = safe;
    return CONN_RECV_WAIT;
}

/* The receive's answer from the buffer alone, or CONN_RECV_WAIT. */
static int try_satisfy(lbk_conn *c, slice *out)
{
    const char *data = c->buf + c->off;
    size_t have = c->len - c->off;
    switch (c->recv.kind) {
    case CONN_PATTERN_LINE: {
        const char *nl = have ? memchr(data, '\n', have) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - data);
            size_t cr = n > 0 && data[n - 1] == '\r';
            return take(c, out, n - cr, cr + 1);
        }
        break;
    }
    case CONN_PATTERN_BYTES:
        if (have >= c->recv.want) return take(c, out, c->recv.want, 0);
        break;
    case CONN_PATTERN_ANY:
        if (have > 0) return take(c, out, have < c->recv.want ? have : c->recv.want, 0);
        break;
    case CONN_PATTERN_UNTIL: {
        int rc = try_until(c, out);
        if (rc != CONN_RECV_WAIT) return rc;
        break;
    }
    case CONN_PATTERN_ALL:
        if (c->eof) return take(c, out, have, 0);
        return CONN_RECV_WAIT;
    }
    if (c->eof) {   /* nil, "closed", partial */
        take(c, out, have, 0);
        return CONN_RECV_CLOSED;
    }
    return CONN_RECV_WAIT;
}

int conn_recv(lbk_conn *c, slice *out, int *events, const char **err)
{
    for (;;) {
        int rc = try_satisfy(c, out);
        if (rc != CONN_RECV_WAIT) return rc;
        int got = fill(c, events, err);
        if (got == 0) return CONN_RECV_WAIT;
        if (got < 0) {
            take(c, out, c->len - c->off, 0);
            return CONN_RECV_BROKEN;
        }
    }
}
