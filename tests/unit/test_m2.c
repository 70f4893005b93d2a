/* m2_parse, m2_header_get and the reply prefix, on the frames docs/protocol.md shows
 * and on everything a broken or hostile peer could send instead. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m2.h"

/* ---- helpers ------------------------------------------------------------- */

/* Compares a slice with a string literal (which may hold NUL bytes). */
#define assert_slice(s, lit) do {                                   \
        slice s_ = (s);                                             \
        assert_non_null(s_.p);                                      \
        assert_int_equal(s_.n, sizeof(lit) - 1);                    \
        if (s_.n)                                                   \
            assert_memory_equal(s_.p, lit, sizeof(lit) - 1);        \
    } while (0)

#define assert_absent(s) assert_null((s).p)

/* The live frames of docs/protocol.md (Request frames, Notices). The tnetstring example's
 * sender is elided there ("b0ba5eed-..."); a full UUID stands in for it. */
static const char JSON_EXAMPLE[] =
    "54c6755b-9628-40a4-9a2d-cc82a816345e 2 /a%20b/c 241:{\"PATH\":\"/a%20b/c\","
    "\"x-forwarded-for\":\"127.0.0.1\",\"x-up\":\"v\",\"host\":\"localhost\","
    "\"cookie\":[\"a=1\",\"b=2\"],\"METHOD\":\"GET\",\"VERSION\":\"HTTP/1.1\","
    "\"URI\":\"/a%20b/c?x=1&y=2\",\"QUERY\":\"x=1&y=2\",\"PATTERN\":\"/\","
    "\"URL_SCHEME\":\"http\",\"REMOTE_ADDR\":\"127.0.0.1\"},0:,";

static const char TNET_EXAMPLE[] =
    "b0ba5eed-1f2e-4d3c-8b7a-6a5b4c3d2e1f 3 /tnet/x 205:11:REMOTE_ADDR,9:127.0.0.1,"
    "6:METHOD,3:GET,10:URL_SCHEME,4:http,7:PATTERN,6:/tnet/,5:QUERY,3:q=1,3:URI,"
    "11:/tnet/x?q=1,7:VERSION,8:HTTP/1.1,4:PATH,7:/tnet/x,4:host,9:localhost,"
    "15:x-forwarded-for,9:127.0.0.1,}0:,";

static const char JSON_DISCONNECT[] =
    "54c6755b-9628-40a4-9a2d-cc82a816345e 5 @* 17:{\"METHOD\":\"JSON\"},"
    "21:{\"type\":\"disconnect\"},";

static const char TNET_DISCONNECT[] =
    "b0ba5eed-1f2e-4d3c-8b7a-6a5b4c3d2e1f 5 @* 16:6:METHOD,4:JSON,}"
    "21:{\"type\":\"disconnect\"},";

#define LIT_LEN(s) (sizeof(s) - 1)

typedef struct fixture {
    m2_request req;      /* reused across parses, like the host does */
    char *frame;         /* the current frame, an exact-size heap copy */
    const char *err;
} fixture;

static int fixture_setup(void **state)
{
    *state = calloc(1, sizeof(fixture));
    return *state ? 0 : -1;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    free(f->frame);
    m2_headers_free(&f->req.headers);
    free(f);
    return 0;
}

/* Copies n bytes into a buffer of exactly n bytes (so ASan catches any read
 * past the end) and parses it. The copy lives until the next parse. */
static int parse_bytes(fixture *f, const char *bytes, size_t n)
{
    free(f->frame);
    f->frame = malloc(n ? n : 1);
    assert_non_null(f->frame);
    memcpy(f->frame, bytes, n);
    f->err = NULL;
    int rc = m2_parse(f->frame, n, &f->req, &f->err);
    if (rc == 0)
        assert_null(f->err);
    else
        assert_non_null(f->err);
    return rc;
}

static int parse_str(fixture *f, const char *s) { return parse_bytes(f, s, strlen(s)); }

/* A growable byte buffer for building frames. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_add(buf *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void buf_fmt(buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof tmp);
    buf_add(b, tmp, (size_t)n);
}

/* "abc-123 7 PATH LEN:HEADERS,LEN:BODY," with JSON headers given as text. */
static buf json_frame(const char *path, const char *headers, size_t headers_n,
                      const char *body, size_t body_n)
{
    buf b = { 0 };
    buf_fmt(&b, "abc-123 7 %s %zu:", path, headers_n);
    buf_add(&b, headers, headers_n);
    buf_fmt(&b, ",%zu:", body_n);
    buf_add(&b, body, body_n);
    buf_add(&b, ",", 1);
    return b;
}

/* The same with a tnetstring dict payload ("LEN:...}"). */
static buf tnet_frame(const char *path, const char *dict, size_t dict_n,
                      const char *body, size_t body_n)
{
    buf b = { 0 };
    buf_fmt(&b, "abc-123 7 %s %zu:", path, dict_n);
    buf_add(&b, dict, dict_n);
    buf_fmt(&b, "}%zu:", body_n);
    buf_add(&b, body, body_n);
    buf_add(&b, ",", 1);
    return b;
}

static int parse_json_headers(fixture *f, const char *headers)
{
    buf b = json_frame("/p", headers, strlen(headers), "", 0);
    int rc = parse_bytes(f, b.p, b.n);
    free(b.p);
    return rc;
}

static int parse_tnet_headers(fixture *f, const char *dict, size_t dict_n)
{
    buf b = tnet_frame("/p", dict, dict_n, "", 0);
    int rc = parse_bytes(f, b.p, b.n);
    free(b.p);
    return rc;
}

/* How many headers are named key (exactly), and the i-th of their values. */
static int count_key(const m2_request *req, const char *key)
{
    int c = 0;
    for (int i = 0; i < req->headers.n; i++)
        c += slice_eq(req->headers.v[i].key, key);
    return c;
}

static slice nth_value(const m2_request *req, const char *key, int nth)
{
    for (int i = 0; i < req->headers.n; i++)
        if (slice_eq(req->headers.v[i].key, key) && nth-- == 0)
            return req->headers.v[i].value;
    return (slice){ NULL, 0 };
}

static slice header(const m2_request *req, const char *name)
{
    const m2_header *h = m2_header_get(req, name, strlen(name));
    return h ? h->value : (slice){ NULL, 0 };
}

/* ---- the live examples --------------------------------------------------- */

static void json_live_example(void **state)
{
    fixture *f = *state;
    m2_request *r = &f->req;
    assert_int_equal(parse_bytes(f, JSON_EXAMPLE, LIT_LEN(JSON_EXAMPLE)), 0);

    assert_int_equal(r->kind, M2_HTTP);
    assert_int_equal(r->encoding, M2_JSON);
    assert_slice(r->sender, "54c6755b-9628-40a4-9a2d-cc82a816345e");
    assert_int_equal(r->conn_id, 2);
    assert_slice(r->path, "/a%20b/c");
    assert_slice(r->method, "GET");
    assert_slice(r->version, "HTTP/1.1");
    assert_slice(r->uri, "/a%20b/c?x=1&y=2");
    assert_slice(r->query, "x=1&y=2");
    assert_slice(r->pattern, "/");
    assert_slice(r->url_scheme, "http");
    assert_slice(r->remote_addr, "127.0.0.1");
    assert_absent(r->upload_start);
    assert_absent(r->upload_done);
    assert_slice(r->body, "");
    /* The body slice points into the frame, just before the final ','. */
    assert_ptr_equal(r->body.p, f->frame + LIT_LEN(JSON_EXAMPLE) - 1);

    /* 11 keys, "cookie" twice: every one is kept, in frame order. */
    assert_int_equal(r->headers.n, 13);
    assert_slice(r->headers.v[0].key, "PATH");
    assert_slice(r->headers.v[0].value, "/a%20b/c");
    assert_slice(r->headers.v[4].key, "cookie");
    assert_slice(r->headers.v[4].value, "a=1");
    assert_slice(r->headers.v[5].key, "cookie");
    assert_slice(r->headers.v[5].value, "b=2");
    assert_slice(r->headers.v[12].key, "REMOTE_ADDR");
    assert_slice(header(r, "host"), "localhost");
    assert_slice(header(r, "x-forwarded-for"), "127.0.0.1");
}

static void tnet_live_example(void **state)
{
    fixture *f = *state;
    m2_request *r = &f->req;
    assert_int_equal(parse_bytes(f, TNET_EXAMPLE, LIT_LEN(TNET_EXAMPLE)), 0);

    assert_int_equal(r->kind, M2_HTTP);
    assert_int_equal(r->encoding, M2_TNETSTRING);
    assert_slice(r->sender, "b0ba5eed-1f2e-4d3c-8b7a-6a5b4c3d2e1f");
    assert_int_equal(r->conn_id, 3);
    assert_slice(r->path, "/tnet/x");
    assert_slice(r->method, "GET");
    assert_slice(r->version, "HTTP/1.1");
    assert_slice(r->uri, "/tnet/x?q=1");
    assert_slice(r->query, "q=1");
    assert_slice(r->pattern, "/tnet/");
    assert_slice(r->url_scheme, "http");
    assert_slice(r->remote_addr, "127.0.0.1");
    assert_slice(r->body, "");
    assert_int_equal(r->headers.n, 10);
    assert_slice(r->headers.v[0].key, "REMOTE_ADDR");
    assert_slice(r->headers.v[9].key, "x-forwarded-for");
    assert_slice(header(r, "HOST"), "localhost");
}

/* ---- headers ------------------------------------------------------------- */

static void repeated_headers_json_array(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        "{\"METHOD\":\"GET\",\"cookie\":[\"a=1\",\"b=2\",\"c=3\"],\"x\":\"y\"}"), 0);
    assert_int_equal(count_key(&f->req, "cookie"), 3);
    assert_slice(nth_value(&f->req, "cookie", 0), "a=1");
    assert_slice(nth_value(&f->req, "cookie", 1), "b=2");
    assert_slice(nth_value(&f->req, "cookie", 2), "c=3");
    assert_slice(header(&f->req, "Cookie"), "a=1");        /* first one wins */
    assert_slice(f->req.headers.v[4].key, "x");            /* order is kept */
}

static void repeated_headers_tnet_list(void **state)
{
    fixture *f = *state;
    static const char dict[] = "6:METHOD,3:GET,6:cookie,12:3:a=1,3:b=2,]1:x,1:y,";
    assert_int_equal(parse_tnet_headers(f, dict, LIT_LEN(dict)), 0);
    assert_int_equal(f->req.headers.n, 4);
    assert_int_equal(count_key(&f->req, "cookie"), 2);
    assert_slice(nth_value(&f->req, "cookie", 0), "a=1");
    assert_slice(nth_value(&f->req, "cookie", 1), "b=2");
    assert_slice(f->req.headers.v[3].value, "y");
}

static void empty_array_and_empty_list_give_no_entry(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f, "{\"METHOD\":\"GET\",\"a\":[],\"b\":[ ]}"), 0);
    assert_int_equal(f->req.headers.n, 1);
    static const char dict[] = "6:METHOD,3:GET,1:a,0:]";
    assert_int_equal(parse_tnet_headers(f, dict, LIT_LEN(dict)), 0);
    assert_int_equal(f->req.headers.n, 1);
}

static void duplicate_keys_keep_every_entry(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        "{\"METHOD\":\"GET\",\"a\":\"1\",\"METHOD\":\"POST\",\"a\":\"2\"}"), 0);
    assert_int_equal(f->req.headers.n, 4);
    assert_slice(f->req.method, "GET");     /* like m2_header_get: the first */
    assert_slice(nth_value(&f->req, "METHOD", 1), "POST");
    assert_slice(nth_value(&f->req, "a", 1), "2");
}

static void json_escapes_decode_in_place(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        "{\"METHOD\":\"GET\","
        "\"simple\":\"q\\\"b\\\\s\\/n\\nr\\rt\\tb\\bf\\f\","
        "\"e\\u0301t\\u00e9\":\"caf\\u00e9\","
        "\"euro\":\"\\u20AC\","
        "\"emoji\":\"<\\ud83d\\ude00>\","
        "\"nul\":\"a\\u0000b\"}"), 0);
    assert_slice(header(&f->req, "simple"), "q\"b\\s/n\nr\rt\tb\bf\f");
    assert_slice(f->req.headers.v[2].key, "e\xcc\x81t\xc3\xa9");   /* keys decode too */
    assert_slice(f->req.headers.v[2].value, "caf\xc3\xa9");
    assert_slice(header(&f->req, "euro"), "\xe2\x82\xac");
    assert_slice(header(&f->req, "emoji"), "<\xf0\x9f\x98\x80>");
    assert_slice(header(&f->req, "nul"), "a\0b");
}

static void raw_control_and_non_utf8_bytes_are_kept(void **state)
{
    fixture *f = *state;
    /* Mongrel2 escapes only '"' and '\\' (docs/protocol.md, Header keys). */
    assert_int_equal(parse_json_headers(f,
        "{\"METHOD\":\"GET\",\"x-tab\":\"a\tb\x01\xff\xfe\",\"x-nl\":\"l1\nl2\"}"), 0);
    assert_slice(header(&f->req, "x-tab"), "a\tb\x01\xff\xfe");
    assert_slice(header(&f->req, "x-nl"), "l1\nl2");
}

static void scalars_are_kept_as_raw_text(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        "{\"METHOD\":\"GET\",\"n\":12,\"f\":-1.5e+3,\"t\":true,\"no\":false,\"z\":null}"), 0);
    assert_slice(header(&f->req, "n"), "12");
    assert_slice(header(&f->req, "f"), "-1.5e+3");
    assert_slice(header(&f->req, "t"), "true");
    assert_slice(header(&f->req, "no"), "false");
    assert_slice(header(&f->req, "z"), "null");

    static const char dict[] = "6:METHOD,3:GET,1:n,2:12#1:b,4:true!1:z,0:~";
    assert_int_equal(parse_tnet_headers(f, dict, LIT_LEN(dict)), 0);
    assert_slice(header(&f->req, "n"), "12");
    assert_slice(header(&f->req, "b"), "true");
    assert_slice(header(&f->req, "z"), "");
}

static void whitespace_between_json_tokens(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        " \n{ \"METHOD\" :\t\"GET\" ,\r\n \"a\" : [ \"x\" , \"y\" ] } \n"), 0);
    assert_slice(f->req.method, "GET");
    assert_slice(nth_value(&f->req, "a", 1), "y");
    assert_int_equal(f->req.headers.n, 3);
}

static void upper_case_keys_cannot_be_forged(void **state)
{
    fixture *f = *state;
    /* A client "METHOD: EVIL" header arrives lower-cased, next to the real one. */
    assert_int_equal(parse_json_headers(f,
        "{\"method\":\"EVIL\",\"Query\":\"q\",\"METHOD\":\"GET\"}"), 0);
    assert_slice(f->req.method, "GET");
    assert_absent(f->req.query);
    /* m2_header_get is case-insensitive, so it finds the client's entry first. */
    assert_slice(header(&f->req, "METHOD"), "EVIL");

    assert_int_equal(parse_json_headers(f, "{\"method\":\"GET\"}"), -1);
    assert_string_equal(f->err, "missing METHOD");
}

static void header_get_matches_case_insensitively(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_bytes(f, JSON_EXAMPLE, LIT_LEN(JSON_EXAMPLE)), 0);
    assert_slice(header(&f->req, "Host"), "localhost");
    assert_slice(header(&f->req, "X-Forwarded-For"), "127.0.0.1");
    assert_slice(header(&f->req, "remote_addr"), "127.0.0.1");
    assert_absent(header(&f->req, "hos"));
    assert_absent(header(&f->req, "hosts"));
    assert_absent(header(&f->req, "content-length"));
    /* len, not a NUL, ends the name. */
    const m2_header *h = m2_header_get(&f->req, "hostXYZ", 4);
    assert_non_null(h);
    assert_slice(h->value, "localhost");
    /* A byte that differs only in bit 0x20 but is not a letter must not match. */
    assert_int_equal(parse_json_headers(f, "{\"METHOD\":\"GET\",\"a[\":\"1\"}"), 0);
    assert_null(m2_header_get(&f->req, "a{", 2));
}

static void upload_headers_are_picked_out(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_json_headers(f,
        "{\"PATH\":\"/up\",\"content-length\":\"50000\","
        "\"x-mongrel2-upload-start\":\"/tmp/upload.AbC123\",\"METHOD\":\"POST\"}"), 0);
    assert_slice(f->req.upload_start, "/tmp/upload.AbC123");
    assert_absent(f->req.upload_done);

    assert_int_equal(parse_json_headers(f,
        "{\"PATH\":\"/up\",\"content-length\":\"50000\","
        "\"x-mongrel2-upload-start\":\"/tmp/upload.AbC123\","
        "\"x-mongrel2-upload-done\":\"/tmp/upload.AbC123\",\"METHOD\":\"POST\"}"), 0);
    assert_slice(f->req.upload_start, "/tmp/upload.AbC123");
    assert_slice(f->req.upload_done, "/tmp/upload.AbC123");
    assert_slice(f->req.method, "POST");
    assert_int_equal(f->req.body.n, 0);

    static const char dict[] =
        "6:METHOD,4:POST,23:x-mongrel2-upload-start,3:/t1,22:x-mongrel2-upload-done,3:/t1,";
    assert_int_equal(parse_tnet_headers(f, dict, LIT_LEN(dict)), 0);
    assert_slice(f->req.upload_start, "/t1");
    assert_slice(f->req.upload_done, "/t1");
}

static void websocket_frame_with_flags(void **state)
{
    fixture *f = *state;
    static const char hdrs[] =
        "{\"PATH\":\"/ws\",\"upgrade\":\"websocket\",\"METHOD\":\"WEBSOCKET\",\"FLAGS\":\"0x82\"}";
    static const char body[] = "\x00\x01\xff,\x82";
    buf b = json_frame("/ws", hdrs, LIT_LEN(hdrs), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.kind, M2_HTTP);
    assert_slice(f->req.method, "WEBSOCKET");
    assert_slice(header(&f->req, "flags"), "0x82");
    assert_slice(f->req.body, "\x00\x01\xff,\x82");
}

/* ---- bodies -------------------------------------------------------------- */

static void body_with_nul_and_commas(void **state)
{
    fixture *f = *state;
    static const char body[] = "a,b\0c,,\0:}";
    static const char hdrs[] = "{\"METHOD\":\"POST\"}";
    buf b = json_frame("/p", hdrs, LIT_LEN(hdrs), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_slice(f->req.body, "a,b\0c,,\0:}");

    static const char dict[] = "6:METHOD,4:POST,";
    b = tnet_frame("/p", dict, LIT_LEN(dict), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_slice(f->req.body, "a,b\0c,,\0:}");
}

static void body_survives_header_decoding(void **state)
{
    fixture *f = *state;
    static const char hdrs[] = "{\"METHOD\":\"POST\",\"x\":\"\\u00e9\\n\\\"\"}";
    static const char body[] = "\\u00e9\\n untouched";
    buf b = json_frame("/p", hdrs, LIT_LEN(hdrs), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_slice(header(&f->req, "x"), "\xc3\xa9\n\"");
    assert_slice(f->req.body, "\\u00e9\\n untouched");
}

static void one_mib_body(void **state)
{
    fixture *f = *state;
    size_t n = 1u << 20;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 7);
    static const char hdrs[] = "{\"METHOD\":\"PUT\"}";
    buf b = json_frame("/big", hdrs, LIT_LEN(hdrs), body, n);
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.body.n, n);
    assert_memory_equal(f->req.body.p, body, n);
    /* No copy: the slice ends just before the frame's final ','. */
    assert_ptr_equal(f->req.body.p + n, f->frame + b.n - 1);
    free(body);
}

/* ---- notices ------------------------------------------------------------- */

static void disconnect_notices_in_both_encodings(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_bytes(f, JSON_DISCONNECT, LIT_LEN(JSON_DISCONNECT)), 0);
    assert_int_equal(f->req.kind, M2_DISCONNECT);
    assert_int_equal(f->req.encoding, M2_JSON);
    assert_int_equal(f->req.conn_id, 5);
    assert_slice(f->req.path, "@*");
    assert_slice(f->req.method, "JSON");
    assert_slice(f->req.body, "{\"type\":\"disconnect\"}");   /* handed on unchanged */

    assert_int_equal(parse_bytes(f, TNET_DISCONNECT, LIT_LEN(TNET_DISCONNECT)), 0);
    assert_int_equal(f->req.kind, M2_DISCONNECT);
    assert_int_equal(f->req.encoding, M2_TNETSTRING);
    assert_slice(f->req.method, "JSON");
    assert_int_equal(f->req.headers.n, 1);
}

static void credits_notice(void **state)
{
    fixture *f = *state;
    static const char hdrs[] = "{\"METHOD\":\"JSON\",\"DOWNLOAD_CREDITS\":\"4096\"}";
    static const char body[] = "{\"type\":\"credits\"}";
    buf b = json_frame("@*", hdrs, LIT_LEN(hdrs), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.kind, M2_CREDITS);
    assert_slice(header(&f->req, "DOWNLOAD_CREDITS"), "4096");
}

static m2_kind notice_kind_of(fixture *f, const char *body)
{
    static const char hdrs[] = "{\"METHOD\":\"JSON\"}";
    buf b = json_frame("@*", hdrs, LIT_LEN(hdrs), body, strlen(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    return f->req.kind;
}

static void notice_body_variants(void **state)
{
    fixture *f = *state;
    assert_int_equal(notice_kind_of(f, " { \"type\" : \"disconnect\" } "), M2_DISCONNECT);
    assert_int_equal(notice_kind_of(f, "{\"id\":5,\"a\":[\"\\\"\"],\"type\":\"credits\"}"),
                     M2_CREDITS);
    assert_int_equal(notice_kind_of(f, "{\"type\":\"disconnect\",\"x\":{\"nested\":1}}"),
                     M2_DISCONNECT);
    assert_int_equal(notice_kind_of(f, "{\"type\":\"other\"}"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "{\"Type\":\"disconnect\"}"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "{\"type\":\"disconnected\"}"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "{\"type\":1}"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "garbage"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, ""), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "{\"type\":\"disconn"), M2_NOTICE);
    assert_int_equal(notice_kind_of(f, "{\"a\\"), M2_NOTICE);
}

static void notice_needs_no_method(void **state)
{
    fixture *f = *state;
    static const char body[] = "{\"type\":\"disconnect\"}";
    buf b = json_frame("@*", "{}", 2, body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.kind, M2_DISCONNECT);
    assert_int_equal(f->req.headers.n, 0);
}

static void legacy_json_method_is_a_notice(void **state)
{
    fixture *f = *state;
    static const char hdrs[] = "{\"PATH\":\"@chat\",\"METHOD\":\"JSON\"}";
    static const char body[] = "{\"type\":\"msg\",\"msg\":\"hi\"}";
    buf b = json_frame("@chat", hdrs, LIT_LEN(hdrs), body, LIT_LEN(body));
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.kind, M2_NOTICE);

    /* Even a disconnect-looking body is just a notice off the "@*" path. */
    b = json_frame("/x", hdrs, LIT_LEN(hdrs), JSON_DISCONNECT, 0);
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_int_equal(f->req.kind, M2_NOTICE);
}

/* ---- malformed frames ---------------------------------------------------- */

static void every_truncation_is_rejected(void **state)
{
    fixture *f = *state;
    static const struct { const char *frame; size_t n; } frames[] = {
        { JSON_EXAMPLE, LIT_LEN(JSON_EXAMPLE) },
        { TNET_EXAMPLE, LIT_LEN(TNET_EXAMPLE) },
        { JSON_DISCONNECT, LIT_LEN(JSON_DISCONNECT) },
        { TNET_DISCONNECT, LIT_LEN(TNET_DISCONNECT) },
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        assert_int_equal(parse_bytes(f, frames[i].frame, frames[i].n), 0);
        for (size_t cut = 0; cut < frames[i].n; cut++)
            assert_int_equal(parse_bytes(f, frames[i].frame, cut), -1);
    }
}

static void malformed_framing(void **state)
{
    fixture *f = *state;
#define OK_TAIL "16:{\"METHOD\":\"GET\"},0:,"
    static const struct { const char *frame; size_t n; const char *err; } cases[] = {
        { "", 0, "empty frame" },
        { " abc 7 /p " OK_TAIL, 0, "bad sender" },
        { "\x01" "abc 7 /p " OK_TAIL, 0, "bad sender" },
        { "ab_c 7 /p " OK_TAIL, 0, "bad sender" },
        { "abc.d 7 /p " OK_TAIL, 0, "bad sender" },
        { "abc", 0, "bad sender" },
        { "abc\t7 /p " OK_TAIL, 0, "bad sender" },
        { "abc 4294967296 /p " OK_TAIL, 0, "bad conn id" },
        { "abc 99999999999 /p " OK_TAIL, 0, "bad conn id" },
        { "abc 00000000001 /p " OK_TAIL, 0, "bad conn id" },
        { "abc  /p " OK_TAIL, 0, "bad conn id" },
        { "abc -1 /p " OK_TAIL, 0, "bad conn id" },
        { "abc 7x /p " OK_TAIL, 0, "bad conn id" },
        { "abc 7", 0, "bad conn id" },
        { "abc 7  " OK_TAIL, 0, "bad path" },
        { "abc 7 /p", 0, "bad path" },
        { "abc 7 /p :{\"METHOD\":\"GET\"},0:,", 0, "bad headers length" },
        { "abc 7 /p x16:{\"METHOD\":\"GET\"},0:,", 0, "bad headers length" },
        { "abc 7 /p -16:{\"METHOD\":\"GET\"},0:,", 0, "bad headers length" },
        { "abc 7 /p 16{\"METHOD\":\"GET\"},0:,", 0, "bad headers length" },
        { "abc 7 /p 0000000016:{\"METHOD\":\"GET\"},0:,", 0, "bad headers length" },
        { "abc 7 /p 99:{\"METHOD\":\"GET\"},0:,", 0, "headers length runs past the frame" },
        { "abc 7 /p 999999999:{}", 0, "headers length runs past the frame" },
        { "abc 7 /p 22:{\"METHOD\":\"GET\"},0:,", 0, "headers length runs past the frame" },
        { "abc 7 /p 17:{\"METHOD\":\"GET\"},0:,", 0, "headers end in neither ',' nor '}'" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"}]0:,", 0, "headers end in neither ',' nor '}'" },
        { "abc 7 /p 15:{\"METHOD\":\"GET\"}0:,", 0, "bad tnetstring header key" },
        { "abc 7 /p 15:{\"METHOD\":\"GET\"},0:,", 0, "bad body length" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},:,", 0, "bad body length" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},", 0, "bad body length" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},1000000000:,", 0, "bad body length" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},1:,", 0, "body length runs past the frame" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},5:ab,", 0, "body length runs past the frame" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},0:;", 0, "body does not end in ','" },
        { "abc 7 /p 16:{\"METHOD\":\"GET\"},1:ab", 0, "body does not end in ','" },
        { "abc 7 /p " OK_TAIL "x", 0, "bytes after the body" },
        { "abc 7 /p " OK_TAIL ",", 0, "bytes after the body" },
        { "abc 7 /p " OK_TAIL "\0", LIT_LEN("abc 7 /p " OK_TAIL "\0"), "bytes after the body" },
        { "abc 7 /p " OK_TAIL OK_TAIL, 0, "bytes after the body" },
    };
#undef OK_TAIL
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].n ? cases[i].n : strlen(cases[i].frame);
        if (parse_bytes(f, cases[i].frame, n) != -1)
            fail_msg("case %zu parsed: %s", i, cases[i].frame);
        if (strcmp(f->err, cases[i].err) != 0)
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].frame, f->err,
                     cases[i].err);
    }
}

static void malformed_json_headers(void **state)
{
    fixture *f = *state;
    static const struct { const char *headers, *err; } cases[] = {
        { "", "headers are not a JSON object" },
        { "   ", "headers are not a JSON object" },
        { "[\"METHOD\",\"GET\"]", "headers are not a JSON object" },
        { "\"METHOD\"", "headers are not a JSON object" },
        { "{\"METHOD\":\"GET\"", "bad JSON object" },
        { "{\"METHOD\":\"GET\" \"a\":\"b\"}", "bad JSON object" },
        { "{\"METHOD\":\"GET\";\"a\":\"b\"}", "bad JSON object" },
        { "{\"METHOD\":\"GET\",}", "bad JSON key" },
        { "{,\"METHOD\":\"GET\"}", "bad JSON key" },
        { "{METHOD:\"GET\"}", "bad JSON key" },
        { "{\"METHOD\" \"GET\"}", "missing ':' in JSON" },
        { "{\"METHOD\"", "missing ':' in JSON" },
        { "{\"METHOD\":", "missing JSON value" },
        { "{\"METHOD\":GET}", "bad JSON value" },
        { "{\"METHOD\":\"GET\",\"a\":tru}", "bad JSON value" },
        { "{\"METHOD\":\"GET\",\"a\":-}", "bad JSON value" },
        { "{\"METHOD\":\"GET\",\"a\":1x}", "bad JSON value" },
        { "{\"METHOD\":\"GET\",\"a\":}", "bad JSON value" },
        { "{\"METHOD\":\"GET\"}x", "bytes after the JSON headers" },
        { "{\"METHOD\":\"GET\"}{}", "bytes after the JSON headers" },
        { "{\"METHOD\":\"GET", "unterminated JSON string" },
        { "{\"METHOD\":\"GET\\\"}", "unterminated JSON string" },
        { "{\"METHOD\":\"GET\",\"a\":{\"b\":\"c\"}}", "nested JSON object" },
        { "{\"METHOD\":\"GET\",\"a\":[1,2]}", "JSON array holds a non-string" },
        { "{\"METHOD\":\"GET\",\"a\":[\"x\",2]}", "JSON array holds a non-string" },
        { "{\"METHOD\":\"GET\",\"a\":[\"x\",[\"y\"]]}", "JSON array holds a non-string" },
        { "{\"METHOD\":\"GET\",\"a\":[{}]}", "JSON array holds a non-string" },
        { "{\"METHOD\":\"GET\",\"a\":[\"x\",]}", "JSON array holds a non-string" },
        { "{\"METHOD\":\"GET\",\"a\":[\"x\" \"y\"]}", "bad JSON array" },
        { "{\"METHOD\":\"GET\",\"a\":[\"x\"}", "bad JSON array" },
        { "{\"METHOD\":\"GET\",\"a\":[", "JSON array holds a non-string" },
        { "{\"METHOD\":\"G\\qT\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\x41\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\u12\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\u12G4\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\ud83d\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\ud83dx\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\ud83d\\u0041\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\ude00\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\ud83d\\ud83d\"}", "bad JSON escape" },
        { "{\"METHOD\":\"G\\", "bad JSON escape" },
        { "{\"METHOD\":\"G\\u", "bad JSON escape" },
        { "{\"M\\zETHOD\":\"GET\"}", "bad JSON escape" },
        { "{\"host\":\"x\"}", "missing METHOD" },
        { "{}", "missing METHOD" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parse_json_headers(f, cases[i].headers) != -1)
            fail_msg("case %zu parsed: %s", i, cases[i].headers);
        if (strcmp(f->err, cases[i].err) != 0)
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].headers, f->err,
                     cases[i].err);
    }
}

static void malformed_tnet_headers(void **state)
{
    fixture *f = *state;
    static const struct { const char *dict, *err; } cases[] = {
        { "1:1#3:GET,", "bad tnetstring header key" },
        { "6:METHOD,3:GET,0:]3:GET,", "bad tnetstring header key" },
        { "6:METHOD,3:GET,1:a", "bad tnetstring header key" },
        { "6:METHOD,3:GET,01:a,1:b,", "bad tnetstring header key" },
        { "6:METHOD,3:GET,1:a,", "bad tnetstring header value" },
        { "6:METHOD,3:GET,1:a,1:b", "bad tnetstring header value" },
        { "6:METHOD,3:GET,1:a,1:b?", "bad tnetstring header value" },
        { "6:METHOD,3:GET,1:a,8:1:b,1:c,}", "nested tnetstring dict" },
        { "6:METHOD,3:GET,1:a,4:1:1#]", "tnetstring header list holds a non-string" },
        { "6:METHOD,3:GET,1:a,7:4:1:b,]]", "tnetstring header list holds a non-string" },
        { "6:METHOD,3:GET,1:a,3:1:b]", "tnetstring header list holds a non-string" },
        { "4:host,1:x,", "missing METHOD" },
        { "", "missing METHOD" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (parse_tnet_headers(f, cases[i].dict, strlen(cases[i].dict)) != -1)
            fail_msg("case %zu parsed: %s", i, cases[i].dict);
        if (strcmp(f->err, cases[i].err) != 0)
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, cases[i].dict, f->err,
                     cases[i].err);
    }
}

static void conn_id_limits(void **state)
{
    fixture *f = *state;
    assert_int_equal(parse_str(f, "abc 4294967295 /p 16:{\"METHOD\":\"GET\"},0:,"), 0);
    assert_int_equal(f->req.conn_id, 4294967295u);
    assert_int_equal(parse_str(f, "abc 0 /p 16:{\"METHOD\":\"GET\"},0:,"), 0);
    assert_int_equal(f->req.conn_id, 0);
    /* Leading zeros are read as decimal (Mongrel2 never sends them). */
    assert_int_equal(parse_str(f, "abc 0000000042 /p 16:{\"METHOD\":\"GET\"},0:,"), 0);
    assert_int_equal(f->req.conn_id, 42);
    assert_int_equal(parse_str(f, "abc 4294967296 /p 16:{\"METHOD\":\"GET\"},0:,"), -1);
    assert_string_equal(f->err, "bad conn id");
    assert_int_equal(parse_str(f, "abc 9999999999 /p 16:{\"METHOD\":\"GET\"},0:,"), -1);
    assert_string_equal(f->err, "bad conn id");
}

static void path_may_hold_any_byte_but_space(void **state)
{
    fixture *f = *state;
    static const char path[] = "/a\x01\xff%%\"b";
    buf b = json_frame(path, "{\"METHOD\":\"GET\"}", 16, "", 0);
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);
    assert_slice(f->req.path, "/a\x01\xff%%\"b");
}

/* ---- header storage ------------------------------------------------------ */

static void headers_grow_and_are_reused(void **state)
{
    fixture *f = *state;
    buf h = { 0 };
    buf_fmt(&h, "{\"METHOD\":\"GET\",\"QUERY\":\"q=1\",\"x-mongrel2-upload-start\":\"/t\"");
    for (int i = 0; i < 300; i++)
        buf_fmt(&h, ",\"h%d\":\"v%d\"", i, i);
    buf_add(&h, "}", 1);
    buf b = json_frame("/many", h.p, h.n, "", 0);
    free(h.p);
    assert_int_equal(parse_bytes(f, b.p, b.n), 0);
    free(b.p);

    m2_request *r = &f->req;
    assert_int_equal(r->headers.n, 303);
    assert_true(r->headers.cap >= 303);
    assert_slice(r->headers.v[302].key, "h299");
    assert_slice(r->headers.v[302].value, "v299");
    assert_slice(header(r, "H150"), "v150");
    assert_slice(r->query, "q=1");
    assert_slice(r->upload_start, "/t");

    /* The next frame reuses the storage and starts from clean fields. */
    m2_header *storage = r->headers.v;
    int cap = r->headers.cap;
    assert_int_equal(parse_bytes(f, JSON_DISCONNECT, LIT_LEN(JSON_DISCONNECT)), 0);
    assert_ptr_equal(r->headers.v, storage);
    assert_int_equal(r->headers.cap, cap);
    assert_int_equal(r->headers.n, 1);
    assert_absent(r->query);
    assert_absent(r->upload_start);
    assert_null(m2_header_get(r, "h1", 2));

    assert_int_equal(parse_bytes(f, TNET_EXAMPLE, LIT_LEN(TNET_EXAMPLE)), 0);
    assert_ptr_equal(r->headers.v, storage);
    assert_int_equal(r->headers.n, 10);
    assert_slice(r->query, "q=1");

    /* A failed parse leaves the storage usable too. */
    assert_int_equal(parse_str(f, "garbage"), -1);
    assert_ptr_equal(r->headers.v, storage);
    assert_int_equal(parse_bytes(f, JSON_EXAMPLE, LIT_LEN(JSON_EXAMPLE)), 0);
    assert_slice(r->query, "x=1&y=2");
}

static void headers_grow_from_a_caller_array(void **state)
{
    fixture *f = *state;
    f->req.headers.v = malloc(sizeof(m2_header));
    f->req.headers.cap = 1;
    assert_int_equal(parse_bytes(f, JSON_EXAMPLE, LIT_LEN(JSON_EXAMPLE)), 0);
    assert_int_equal(f->req.headers.n, 13);
    assert_true(f->req.headers.cap >= 13);
    assert_slice(f->req.headers.v[12].value, "127.0.0.1");
}

static void headers_free_resets(void **state)
{
    (void)state;
    m2_headers h = { 0 };
    m2_headers_free(&h);    /* freeing never-used storage is fine */
    h.v = malloc(4 * sizeof(m2_header));
    h.n = 2;
    h.cap = 4;
    m2_headers_free(&h);
    assert_null(h.v);
    assert_int_equal(h.n, 0);
    assert_int_equal(h.cap, 0);
}

/* ---- reply prefix -------------------------------------------------------- */

static const slice SENDER = { "54c6755b-9628-40a4-9a2d-cc82a816345e", 36 };

/* Writes a prefix into a buffer filled with a marker and checks that exactly
 * the promised number of bytes changed. */
static size_t prefix_into(char *out, size_t cap, const uint32_t *ids, int n)
{
    memset(out, '#', cap);
    size_t size = m2_reply_prefix_size(SENDER, ids, n);
    size_t written = m2_reply_prefix(out, SENDER, ids, n);
    assert_int_equal(written, size);
    assert_true(written < cap);
    for (size_t i = written; i < cap; i++)
        assert_int_equal(out[i], '#');
    return written;
}

static void reply_prefix_small(void **state)
{
    (void)state;
    char out[128];
    static const uint32_t one[] = { 12 }, two[] = { 12, 13 }, edges[] = { 0, 4294967295u };
    size_t n;

    n = prefix_into(out, sizeof out, one, 1);
    assert_int_equal(n, LIT_LEN("54c6755b-9628-40a4-9a2d-cc82a816345e 2:12, "));
    assert_memory_equal(out, "54c6755b-9628-40a4-9a2d-cc82a816345e 2:12, ", n);

    n = prefix_into(out, sizeof out, two, 2);
    assert_int_equal(n, LIT_LEN("54c6755b-9628-40a4-9a2d-cc82a816345e 5:12 13, "));
    assert_memory_equal(out, "54c6755b-9628-40a4-9a2d-cc82a816345e 5:12 13, ", n);

    n = prefix_into(out, sizeof out, edges, 2);
    assert_int_equal(n, LIT_LEN("54c6755b-9628-40a4-9a2d-cc82a816345e 12:0 4294967295, "));
    assert_memory_equal(out, "54c6755b-9628-40a4-9a2d-cc82a816345e 12:0 4294967295, ", n);
}

static void reply_prefix_128_ids(void **state)
{
    (void)state;
    uint32_t ids[M2_MAX_TARGETS];
    buf want_list = { 0 };
    for (int i = 0; i < M2_MAX_TARGETS; i++) {
        ids[i] = (uint32_t)i * 33554467u;   /* a spread of 1- to 10-digit ids */
        buf_fmt(&want_list, i ? " %u" : "%u", (unsigned)ids[i]);
    }
    buf want = { 0 };
    buf_fmt(&want, "%.*s %zu:", (int)SENDER.n, SENDER.p, want_list.n);
    buf_add(&want, want_list.p, want_list.n);
    buf_add(&want, ", ", 2);

    char out[4096];
    size_t n = prefix_into(out, sizeof out, ids, M2_MAX_TARGETS);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.p, n);
    free(want.p);
    free(want_list.p);
}

static void reply_prefix_refuses_0_and_129_ids(void **state)
{
    (void)state;
    uint32_t ids[M2_MAX_TARGETS + 1] = { 0 };
    char out[8] = "#######";
    assert_int_equal(m2_reply_prefix_size(SENDER, ids, 0), 0);
    assert_int_equal(m2_reply_prefix(out, SENDER, ids, 0), 0);
    assert_int_equal(m2_reply_prefix_size(SENDER, ids, M2_MAX_TARGETS + 1), 0);
    assert_int_equal(m2_reply_prefix(out, SENDER, ids, M2_MAX_TARGETS + 1), 0);
    assert_int_equal(m2_reply_prefix_size(SENDER, ids, -1), 0);
    assert_int_equal(m2_reply_prefix(out, SENDER, ids, -1), 0);
    assert_memory_equal(out, "#######", 8);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(json_live_example),
        T(tnet_live_example),
        T(repeated_headers_json_array),
        T(repeated_headers_tnet_list),
        T(empty_array_and_empty_list_give_no_entry),
        T(duplicate_keys_keep_every_entry),
        T(json_escapes_decode_in_place),
        T(raw_control_and_non_utf8_bytes_are_kept),
        T(scalars_are_kept_as_raw_text),
        T(whitespace_between_json_tokens),
        T(upper_case_keys_cannot_be_forged),
        T(header_get_matches_case_insensitively),
        T(upload_headers_are_picked_out),
        T(websocket_frame_with_flags),
        T(body_with_nul_and_commas),
        T(body_survives_header_decoding),
        T(one_mib_body),
        T(disconnect_notices_in_both_encodings),
        T(credits_notice),
        T(notice_body_variants),
        T(notice_needs_no_method),
        T(legacy_json_method_is_a_notice),
        T(every_truncation_is_rejected),
        T(malformed_framing),
        T(malformed_json_headers),
        T(malformed_tnet_headers),
        T(conn_id_limits),
        T(path_may_hold_any_byte_but_space),
        T(headers_grow_and_are_reused),
        T(headers_grow_from_a_caller_array),
        cmocka_unit_test(headers_free_resets),
        cmocka_unit_test(reply_prefix_small),
        cmocka_unit_test(reply_prefix_128_ids),
        cmocka_unit_test(reply_prefix_refuses_0_and_129_ids),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
