/* Replies: HTTP heads built by reply.c, framed for Mongrel2 (m2.c) in one
 * buffer and sent on the PUB socket; streams; the access log line. */
#include "host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reply.h"
#include "decimal.h"
#include "flow.h"

static void send_msg(lubeck *h, zmq_msg_t *m)
{
    if (h->send_fn) {
        h->send_fn(h, zmq_msg_data(m), zmq_msg_size(m), h->send_ud);
        zmq_msg_close(m);
        return;
    }
    /* PUB with SNDHWM 0 never blocks and never drops (docs/protocol.md, ZeroMQ settings). */
    if (zmq_msg_send(m, h->pub, 0) < 0) {
        log_error_limited("sending a reply: %s", zmq_strerror(errno));
        zmq_msg_close(m);
    }
}

void host_send_frame(lubeck *h, slice frame)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, frame.n) != 0) return;
    memcpy(zmq_msg_data(&m), frame.p, frame.n);
    send_msg(h, &m);
}

void host_send_now(lubeck *h, slice sender, const uint32_t *ids, int n, slice a, slice b, slice c)
{
    size_t pre = m2_reply_prefix_size(sender, ids, n);
    zmq_msg_t m;
    if (pre == 0 || zmq_msg_init_size(&m, pre + a.n + b.n + c.n) != 0) return;
    char *o = zmq_msg_data(&m);
    o += m2_reply_prefix(o, sender, ids, n);
    if (a.n) { memcpy(o, a.p, a.n); o += a.n; }
    if (b.n) { memcpy(o, b.p, b.n); o += b.n; }
    if (c.n) memcpy(o, c.p, c.n);
    send_msg(h, &m);
}

void host_send_ids(lubeck *h, slice sender, const uint32_t *ids, int n, slice body)
{
    if (n == 1) flow_send(h, sender, ids[0], body, SLICE_LIT(""), SLICE_LIT(""));
    else flow_send_ids(h, sender, ids, n, body);
}

/* One frame to the request's connection, within its flow-control window. */
static int send_frame(lubeck *h, lbk_req *r, slice a, slice b, slice c)
{
    return flow_send(h, r->m2.sender, r->m2.conn_id, a, b, c);
}

void host_close_conn(lubeck *h, lbk_req *r)
{
    send_frame(h, r, SLICE_LIT(""), SLICE_LIT(""), SLICE_LIT(""));   /* empty body = close */
    r->keep_alive = 0;
    r->conn_closed = 1;
}

static char *put_slice(char *o, const char *end, slice s)
{
    size_t n = s.n < (size_t)(end - o) ? s.n : (size_t)(end - o);
    memcpy(o, s.p, n);
    return o + n;
}

static char *put_uint(char *o, uint64_t v)
{
    return o + decimal_write(o, v);
}

/* "127.0.0.1 GET /path 200 123 0.42ms": written by hand, since printf's float
 * formatting alone cost more than parsing the request. */
static void access_log(lubeck *h, lbk_req *r)
{
    if (h->quiet) return;
    char line[512];
    char *o = line, *end = line + 360;   /* room left for the numbers */
    o = put_slice(o, end, r->m2.remote_addr.p ? r->m2.remote_addr : SLICE_LIT("-"));
    *o++ = ' ';
    o = put_slice(o, end, r->m2.method);
    *o++ = ' ';
    o = put_slice(o, end, r->m2.path);
    *o++ = ' ';
    o = put_uint(o, (unsigned)r->status);
    *o++ = ' ';
    o = put_uint(o, r->body_bytes);
    *o++ = ' ';
    double ms = (ev_time() - r->started) * 1000.0;
    unsigned long long hundredths = ms > 0 ? (unsigned long long)(ms * 100.0 + 0.5) : 0;
    o = put_uint(o, hundredths / 100);
    *o++ = '.';
    *o++ = (char)('0' + hundredths / 10 % 10);
    *o++ = (char)('0' + hundredths % 10);
    memcpy(o, "ms\n", 3);
    log_access(line, (size_t)(o + 3 - line));
}

static void response_done(lubeck *h, lbk_req *r)
{
    r->done = 1;
    if (!r->keep_alive) host_close_conn(h, r);
    access_log(h, r);
}

void host_reply_defaults(lubeck *h, lbk_req *r, reply_spec *spec)
{
    spec->http10 = slice_eq(r->m2.version, "HTTP/1.0");
    spec->now = ev_now(h->loop);
    if (!r->keep_alive) spec->conn = REPLY_CONN_CLOSE;
    else if (spec->http10) spec->conn = REPLY_CONN_KEEP_ALIVE;
}

int host_respond(lubeck *h, lbk_req *r, reply_spec *spec, slice body)
{
    if (r->done || r->head_sent) return -1;
    if (!reply_status_has_body(spec->status)) body = SLICE_LIT("");
    spec->content_length = body.n;
    size_t head_len = reply_head_size(spec);
    char stack[2048];
    char *head = head_len <= sizeof stack ? stack : malloc(head_len);
    if (!head) return -1;
    reply_write_head(head, spec);
    if (r->is_head) body = SLICE_LIT("");
    int rc = send_frame(h, r, slice_make(head, head_len), body, SLICE_LIT(""));
    if (head != stack) free(head);
    r->head_sent = 1;
    r->status = spec->status;
    r->body_bytes = spec->content_length;
    response_done(h, r);
    return rc;
}

/* A streamed response is chunked for HTTP/1.1. HTTP/1.0 knows no chunks: the
 * body goes out as it is and the close ends it. HEAD gets the head GET would. */
int host_stream_start(lubeck *h, lbk_req *r, reply_spec *spec)
{
    if (r->done || r->head_sent) return -1;
    int has_body = reply_status_has_body(spec->status);
    if (spec->http10 && has_body) {
        r->keep_alive = 0;
        spec->conn = REPLY_CONN_CLOSE;
        spec->until_close = 1;
        r->stream_raw = 1;
    } else {
        spec->chunked = has_body;
    }
    size_t head_len = reply_head_size(spec);
    char *head = malloc(head_len);
    if (!head) return -1;
    reply_write_head(head, spec);
    int rc = send_frame(h, r, slice_make(head, head_len), SLICE_LIT(""), SLICE_LIT(""));
    free(head);
    r->head_sent = 1;
    r->streaming = has_body && !r->is_head;
    r->status = spec->status;
    return rc;
}

int host_stream_write(lubeck *h, lbk_req *r, slice data)
{
    if (r->done || !r->head_sent) return -1;
    if (!r->streaming || data.n == 0) return 0;   /* HEAD: nothing goes out */
    r->body_bytes += data.n;
    if (r->stream_raw) return send_frame(h, r, data, SLICE_LIT(""), SLICE_LIT(""));
    char size_line[24];
    int n = snprintf(size_line, sizeof size_line, "%zx\r\n", data.n);
    return send_frame(h, r, slice_make(size_line, (size_t)n), data, SLICE_LIT("\r\n"));
}

int host_stream_end(lubeck *h, lbk_req *r)
{
    if (r->done || !r->head_sent) return -1;
    int rc = 0;
    if (r->streaming && !r->stream_raw)
        rc = send_frame(h, r, SLICE_LIT("0\r\n\r\n"), SLICE_LIT(""), SLICE_LIT(""));
    response_done(h, r);
    return rc;
}

/* Answers a request in C, before any Lua runs: refusals the host decides on its
 * own (limits, bad uploads) and serve's probe. The connection is closed after
 * a refusal, since the client may still be sending. */
void host_answer(lubeck *h, lbk_req *r, int status, slice body, const slice *headers,
                           int nheaders)
{
    r->started = ev_now(h->loop);
    if (status >= 400) r->keep_alive = 0;
    reply_spec spec = { .status = status, .headers = headers, .nheaders = nheaders };
    host_reply_defaults(h, r, &spec);
    host_respond(h, r, &spec, body);
    host_req_free(h, r);
}
