/* Mongrel2 request frames in, reply prefixes out (docs/protocol.md, frames and notices).
 *
 * m2_parse makes one forward pass over the frame: it checks the framing
 * (sender, conn id, path, the two netstrings) by skipping over lengths, then walks
 * the headers once, decoding JSON escapes in place and recording each header as a
 * slice into the frame. Nothing is allocated unless a frame has more headers than
 * the caller's header array holds. */
#include <limits.h>
#include <stdlib.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <string.h>

#include "m2.h"
#include "tnet.h"
#include "decimal.h"

#define M2_MAX_LEN_DIGITS 9      /* the same bound tnetstrings use: < 1 GB */
#define M2_MAX_CONN_ID_DIGITS 10 /* 4294967295 */
#define M2_HEADERS_FIRST_CAP 32  /* a browser request has ~10-20 headers */

static int fail(const char **err, const char *why)
{
    if (err)
        *err = why;
    return -1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* ---- headers ------------------------------------------------------------- */

static int push_header(m2_headers *h, slice key, slice value)
{
    if (h->n == h->cap) {
        if (h->cap > INT_MAX / 2)
            return -1;
        int cap = h->cap ? h->cap * 2 : M2_HEADERS_FIRST_CAP;
        m2_header *v = realloc(h->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n].key = key;
    h->v[h->n].value = value;
    h->n++;
    return 0;
}

static int key_is(slice key, const char *name, size_t n)
{
    return memcmp(key.p, name, n) == 0;
}

/* Which m2_request field, if any, Mongrel2's key names. The match is exact and
 * case-sensitive: client headers arrive lower-cased, so a client cannot forge the
 * upper-case keys. Dispatching on the length first keeps this to at most two
 * memcmp calls per header. */
static slice *known_field(m2_request *req, slice key)
{
    switch (key.n) {
    case 3:  return key_is(key, "URI", 3) ? &req->uri : NULL;
    case 5:  return key_is(key, "QUERY", 5) ? &req->query : NULL;
    case 6:  return key_is(key, "METHOD", 6) ? &req->method : NULL;
    case 7:
        if (key_is(key, "VERSION", 7))
            return &req->version;
        return key_is(key, "PATTERN", 7) ? &req->pattern : NULL;
    case 10: return key_is(key, "URL_SCHEME", 10) ? &req->url_scheme : NULL;
    case 11: return key_is(key, "REMOTE_ADDR", 11) ? &req->remote_addr : NULL;
    case 22: return key_is(key, "x-mongrel2-upload-done", 22) ? &req->upload_done : NULL;
    case 23: return key_is(key, "x-mongrel2-upload-start", 23) ? &req->upload_start : NULL;
    default: return NULL;
    }
}

/* Records one header. A picked-out field keeps its first value, as
 * m2_header_get does. */
static inline int add_header(m2_request *req, slice key, slice value, const char **err)
{
    if (push_header(&req->headers, key, value) < 0)
        return fail(err, "out of memory for headers");
    slice *field = known_field(req, key);
    if (field && !field->p)
        *field = value;
    return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

/* The JSON reader below knows exactly the shape Mongrel2 sends: one object whose
 * values are strings, arrays of strings or bare scalars. It is used twice: on the
 * headers (decode = 1, escapes rewritten in place) and on a notice body to find
 * its "type" (decode = 0: read only, since the body is handed on untouched). */
typedef struct json_reader {
    char *p, *end;
    int decode;
} json_reader;

/* Called once per (key, value) entry: 0 goes on, 1 stops the walk early, -1 is
 * an error with *err set. */
typedef int (*json_entry_fn)(void *ud, slice key, slice value, const char **err);

static void json_skip_space(json_reader *in)
{
    while (in->p < in->end &&
           (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits of a \uXXXX escape starting at s (which must have 4 bytes). */
static long json_hex4(const char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_value(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_encode(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escape at *rp (just after its backslash) into *wp. The output is
 * never longer than the escape (at most 3 bytes for a 6-byte \uXXXX, 4 for a
 * 12-byte surrogate pair), which is what makes decoding in place safe. Lone
 * surrogates are rejected: UTF-8 cannot carry them. */
static int json_unescape(char **rp, char **wp, const char *end)
{
    char *r = *rp, *w = *wp;
    if (r >= end)
        return -1;
    char c = *r++;
    switch (c) {
    case '"': case '\\': case '/': *w++ = c; break;
    case 'b': *w++ = '\b'; break;
    case 'f': *w++ = '\f'; break;
    case 'n': *w++ = '\n'; break;
    case 'r': *w++ = '\r'; break;
    case 't': *w++ = '\t'; break;
    case 'u': {
        if (end - r < 4)
            return -1;
        long cp = json_hex4(r);
        r += 4;
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - r < 6 || r[0] != '\\' || r[1] != 'u')
                return -1;
            long low = json_hex4(r + 2);
            if (low < 0xDC00 || low > 0xDFFF)
                return -1;
            r += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        w += utf8_encode(w, (unsigned long)cp);
        break;
    }
    default:
        return -1;
    }
    *rp = r;
    *wp = w;
    return 0;
}

/* Reads a string whose opening quote is at in->p. Any byte but '"' and '\\' is
 * taken as it is: Mongrel2 copies control and non-UTF-8 bytes raw (docs/protocol.md,
 * Header keys). */
/* Nonzero in the high bit of each byte of x that equals the byte in b (the
 * lowest flagged byte is always exact, which is all json_scan uses). */
static inline uint64_t bytes_equal(uint64_t x, uint64_t b)
{
    uint64_t y = x ^ b;
    return (y - 0x0101010101010101ULL) & ~y & 0x8080808080808080ULL;
}

/* The first '"' or '\\' in [p, end), or end: sixteen bytes a step with SSE2
 * (every x86-64 has it), else eight with the word trick above. Most header
 * strings are shorter than one step, so this is one compare and one branch. */
static inline char *json_scan(char *p, char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
        int hit = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote), _mm_cmpeq_epi8(w, backslash)));
        if (hit) return p + __builtin_ctz((unsigned)hit);
        p += 16;
    }
#endif
    const uint64_t quotes = 0x2222222222222222ULL, backslashes = 0x5c5c5c5c5c5c5c5cULL;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t hit = bytes_equal(w, quotes) | bytes_equal(w, backslashes);
        if (hit) return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

static int json_string(json_reader *in, slice *out, const char **err)
{
    char *start = ++in->p, *r = start, *end = in->end;

    /* Most strings have no escapes: find the end without writing anything,
     * eight bytes at a time (this is the hottest loop of a request). */
    r = json_scan(r, end);
    if (r < end && *r == '"') {
        *out = slice_make(start, (size_t)(r - start));
        in->p = r + 1;
        return 0;
    }
    char *w = r;   /* where the decoded text ends */
    if (!in->decode) {
        while (r < end && *r != '"')
            r += (*r == '\\' && end - r > 1) ? 2 : 1;   /* step over an escaped byte */
        w = r;
    } else {
        while (r < end && *r != '"') {
            if (*r != '\\') {
                *w++ = *r++;
                continue;
            }
            r++;
            if (json_unescape(&r, &w, end) < 0)
                return fail(err, "bad JSON escape");
        }
    }
    if (r >= end)
        return fail(err, "unterminated JSON string");
    *out = slice_make(start, (size_t)(w - start));
    in->p = r + 1;
    return 0;
}

static int is_scalar_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '.' || c == '+' || c == '-';
}

/* A number, true, false or null, kept as its raw text. Numbers are checked only
 * loosely (a sign or digit first, at least one digit, only number characters):
 * the value stays text anyway. */
static int json_scalar(json_reader *in, slice *out, const char **err)
{
    char *start = in->p;
    while (in->p < in->end && is_scalar_char(*in->p))
        in->p++;
    slice tok = slice_make(start, (size_t)(in->p - start));

    int ok;
    if (tok.n > 0 && (*start == '-' || is_digit(*start))) {
        int digits = 0, others = 0;
        for (size_t i = 0; i < tok.n; i++) {
            if (is_digit(start[i]))
                digits++;
            else if (!strchr("+-.eE", start[i]))
                others++;
        }
        ok = digits > 0 && others == 0;
    } else {
        ok = slice_eq(tok, "true") || slice_eq(tok, "false") || slice_eq(tok, "null");
    }
    if (!ok)
        return fail(err, "bad JSON value");
    *out = tok;
    return 0;
}

/* Reads a member's value and reports one entry per string (several for an array). */
static int json_value(json_reader *in, slice key, json_entry_fn fn, void *ud,
                      const char **err)
{
    slice value;
    char c = *in->p;

    if (c == '{')
        return fail(err, "nested JSON object");
    if (c != '[') {
        int rc = c == '"' ? json_string(in, &value, err) : json_scalar(in, &value, err);
        return rc < 0 ? rc : fn(ud, key, value, err);
    }

    in->p++;
    json_skip_space(in);
    if (in->p < in->end && *in->p == ']') {     /* [] : a key with no values */
        in->p++;
        return 0;
    }
    for (;;) {
        if (in->p >= in->end || *in->p != '"')
            return fail(err, "JSON array holds a non-string");
        int rc = json_string(in, &value, err);
        if (rc == 0)
            rc = fn(ud, key, value, err);
        if (rc != 0)
            return rc;
        json_skip_space(in);
        if (in->p < in->end && *in->p == ']') {
            in->p++;
            return 0;
        }
        if (in->p >= in->end || *in->p != ',')
            return fail(err, "bad JSON array");
        in->p++;
        json_skip_space(in);
    }
}

/* Walks the object in p[0..n). Returns 0 at its end, 1 if fn stopped early, -1 on
 * an error. No recursion: the depth is at most 2 (object, then array). */
static int json_walk_object(char *p, size_t n, int decode, json_entry_fn fn, void *ud,
                            const char **err)
{
    json_reader in = { p, p + n, decode };
    slice key;

    json_skip_space(&in);
    if (in.p >= in.end || *in.p != '{')
        return fail(err, "headers are not a JSON object");
    in.p++;
    json_skip_space(&in);
    if (in.p < in.end && *in.p == '}')
        goto object_end;

    for (;;) {
        if (in.p >= in.end || *in.p != '"')
            return fail(err, "bad JSON key");
        if (json_string(&in, &key, err) < 0)
            return -1;
        json_skip_space(&in);
        if (in.p >= in.end || *in.p != ':')
            return fail(err, "missing ':' in JSON");
        in.p++;
        json_skip_space(&in);
        if (in.p >= in.end)
            return fail(err, "missing JSON value");
        int rc = json_value(&in, key, fn, ud, err);
        if (rc != 0)
            return rc;
        json_skip_space(&in);
        if (in.p < in.end && *in.p == '}')
            break;
        if (in.p >= in.end || *in.p != ',')
            return fail(err, "bad JSON object");
        in.p++;
        json_skip_space(&in);
    }

object_end:
    in.p++;
    json_skip_space(&in);
    if (in.p != in.end)
        return fail(err, "bytes after the JSON headers");
    return 0;
}

static int json_header_entry(void *ud, slice key, slice value, const char **err)
{
    return add_header(ud, key, value, err);
}

/* The fast path for what Mongrel2 actually writes: compact JSON, string or
 * list-of-strings values, no escapes. It reads each string once, eight bytes
 * at a time, with no callbacks. Anything else (white space, an escape, a bare
 * scalar, a malformed byte) returns 0 and the general reader above starts over
 * and decides. */
static int json_compact(char *p, char *end, m2_request *req)
{
    const char *ignored;
    if (p >= end || *p++ != '{') return 0;
    if (p < end && *p == '}') return p + 1 == end;
    for (;;) {
        if (p >= end || *p != '"') return 0;
        char *key = p + 1, *q = json_scan(key, end);
        if (q >= end || *q != '"' || q + 2 >= end || q[1] != ':') return 0;
        slice k = slice_make(key, (size_t)(q - key));
        p = q + 2;
        int list = *p == '[';
        if (list) {
            p++;
            if (p < end && *p == ']') goto next_member;   /* an empty list: no entry */
        }
        for (;;) {
            if (p >= end || *p != '"') return 0;
            char *value = p + 1;
            q = json_scan(value, end);
            if (q >= end || *q != '"') return 0;
            if (add_header(req, k, slice_make(value, (size_t)(q - value)), &ignored) < 0) return 0;
            p = q + 1;
            if (!list) break;
            if (p < end && *p == ',') { p++; continue; }
            if (p < end && *p == ']') break;
            return 0;
        }
        if (list) {
next_member:
            p++;
        }
        if (p < end && *p == ',') { p++; continue; }
        return p < end && *p == '}' && p + 1 == end;
    }
}

/* Undoes a partial fast-path read before the general reader runs. */
static void forget_headers(m2_request *req)
{
    const slice none = { NULL, 0 };
    req->headers.n = 0;
    req->method = req->version = req->uri = req->query = req->remote_addr = none;
    req->url_scheme = req->pattern = req->upload_start = req->upload_done = none;
}

/* ---- tnetstring headers -------------------------------------------------- */

/* Walks the payload of a tnetstring dict: key (string) followed by a value, which
 * is a string, a list of strings, or a scalar kept as its raw payload text. */
static int tnet_walk_dict(const char *p, size_t n, m2_request *req, const char **err)
{
    const char *end = p + n;
    tnet_item key, value, item;

    while (p < end) {
        long used = tnet_parse(p, (size_t)(end - p), &key);
        if (used < 0 || key.type != TNET_STRING)
            return fail(err, "bad tnetstring header key");
        p += used;
        used = tnet_parse(p, (size_t)(end - p), &value);
        if (used < 0)
            return fail(err, "bad tnetstring header value");
        p += used;

        if (value.type == TNET_DICT)
            return fail(err, "nested tnetstring dict");
        if (value.type != TNET_LIST) {
            if (add_header(req, key.payload, value.payload, err) < 0)
                return -1;
            continue;
        }
        const char *q = value.payload.p, *list_end = q + value.payload.n;
        while (q < list_end) {
            used = tnet_parse(q, (size_t)(list_end - q), &item);
            if (used < 0 || item.type != TNET_STRING)
                return fail(err, "tnetstring header list holds a non-string");
            q += used;
            if (add_header(req, key.payload, item.payload, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- notices ------------------------------------------------------------- */

static int find_notice_type(void *ud, slice key, slice value, const char **err)
{
    (void)err;
    if (!slice_eq(key, "type"))
        return 0;
    *(slice *)ud = value;
    return 1;
}

/* An "@*" frame's body is JSON text such as {"type":"disconnect"}. A body that
 * cannot be read is still a notice, just not one we act on. */
static m2_kind notice_kind(char *body, size_t n)
{
    slice type = { NULL, 0 };
    const char *ignored;
    if (json_walk_object(body, n, 0, find_notice_type, &type, &ignored) == 1) {
        if (slice_eq(type, "disconnect"))
            return M2_DISCONNECT;
        if (slice_eq(type, "credits"))
            return M2_CREDITS;
    }
    return M2_NOTICE;
}

/* ---- the frame ----------------------------------------------------------- */

/* A sender is letters, digits and '-' (a UUID, as a rule): one bit per byte
 * value, since this runs on every byte of every sender. */
static const uint64_t sender_chars[4] = {
    0x03ff200000000000ULL,   /* '-' (45) and '0'..'9' (48..57) */
    0x07fffffe07fffffeULL,   /* 'A'..'Z' (65..90) and 'a'..'z' (97..122) */
    0, 0,
};

static int is_sender_char(char c)
{
    unsigned char u = (unsigned char)c;
    return (int)((sender_chars[u >> 6] >> (u & 63)) & 1);
}

enum { NETSTRING_OK, NETSTRING_BAD_LENGTH, NETSTRING_PAST_END };

/* Reads "LEN:" at *pp and checks that LEN payload bytes and one terminator byte
 * follow. On success *payload is the payload, the terminator is (*payload)[*n],
 * and *pp moves past the terminator. */
static int read_netstring(char **pp, char *end, char **payload, size_t *n)
{
    char *p = *pp, *digits = p;
    size_t v = 0;

    while (p < end && is_digit(*p) && p - digits < M2_MAX_LEN_DIGITS)
        v = v * 10 + (size_t)(*p++ - '0');
    if (p == digits || p >= end || *p != ':')
        return NETSTRING_BAD_LENGTH;
    p++;
    if (v >= (size_t)(end - p))
        return NETSTRING_PAST_END;
    *payload = p;
    *n = v;
    *pp = p + v + 1;
    return NETSTRING_OK;
}

int m2_parse(char *frame, size_t len, m2_request *req, const char **err)
{
    m2_headers headers = req->headers;   /* the storage survives the reset */
    memset(req, 0, sizeof *req);
    req->headers = headers;
    req->headers.n = 0;

    if (len == 0)
        return fail(err, "empty frame");
    char *p = frame, *end = frame + len, *start;

    /* SENDER ' ' */
    for (start = p; p < end && is_sender_char(*p); p++)
        ;
    if (p == start || p >= end || *p != ' ')
        return fail(err, "bad sender");
    req->sender = slice_make(start, (size_t)(p - start));
    p++;

    /* CONN_ID ' ' : at most 10 digits, so the sum cannot overflow 64 bits. */
    uint64_t id = 0;
    for (start = p; p < end && is_digit(*p) && p - start <= M2_MAX_CONN_ID_DIGITS; p++)
        id = id * 10 + (uint64_t)(*p - '0');
    if (p == start || p - start > M2_MAX_CONN_ID_DIGITS || id > UINT32_MAX ||
        p >= end || *p != ' ')
        return fail(err, "bad conn id");
    req->conn_id = (uint32_t)id;
    p++;

    /* PATH ' ' */
    for (start = p; p < end && *p != ' '; p++)
        ;
    if (p == start || p >= end)
        return fail(err, "bad path");
    req->path = slice_make(start, (size_t)(p - start));
    p++;

    /* HEADERS: "LEN:" then JSON ending in ',' or a tnetstring dict ending in '}' */
    char *hdr;
    size_t hdr_n;
    switch (read_netstring(&p, end, &hdr, &hdr_n)) {
    case NETSTRING_BAD_LENGTH: return fail(err, "bad headers length");
    case NETSTRING_PAST_END: return fail(err, "headers length runs past the frame");
    }
    if (hdr[hdr_n] == ',')
        req->encoding = M2_JSON;
    else if (hdr[hdr_n] == '}')
        req->encoding = M2_TNETSTRING;
    else
        return fail(err, "headers end in neither ',' nor '}'");

    /* BODY: "LEN:" bytes ',' and then the frame must end. */
    char *body;
    size_t body_n;
    switch (read_netstring(&p, end, &body, &body_n)) {
    case NETSTRING_BAD_LENGTH: return fail(err, "bad body length");
    case NETSTRING_PAST_END: return fail(err, "body length runs past the frame");
    }
    if (body[body_n] != ',')
        return fail(err, "body does not end in ','");
    if (p != end)
        return fail(err, "bytes after the body");
    req->body = slice_make(body, body_n);

    /* The framing is sound: now read the headers themselves. */
    int rc;
    if (req->encoding == M2_TNETSTRING) {
        rc = tnet_walk_dict(hdr, hdr_n, req, err);
    } else if (json_compact(hdr, hdr + hdr_n, req)) {
        rc = 0;
    } else {
        forget_headers(req);
        rc = json_walk_object(hdr, hdr_n, 1, json_header_entry, req, err);
    }
    if (rc < 0)
        return -1;

    if (req->path.n == 2 && req->path.p[0] == '@' && req->path.p[1] == '*')
        req->kind = notice_kind(body, body_n);
    else if (slice_eq(req->method, "JSON"))
        req->kind = M2_NOTICE;          /* the legacy JSON socket protocol */
    else if (!req->method.p)
        return fail(err, "missing METHOD");
    else
        req->kind = M2_HTTP;
    return 0;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

const m2_header *m2_header_get(const m2_request *req, const char *name, size_t len)
{
    for (int i = 0; i < req->headers.n; i++) {
        const m2_header *h = &req->headers.v[i];
        if (h->key.n != len)
            continue;
        size_t j = 0;
        while (j < len && ascii_lower(h->key.p[j]) == ascii_lower(name[j]))
            j++;
        if (j == len)
            return h;
    }
    return NULL;
}

void m2_headers_free(m2_headers *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

/* ---- replies ------------------------------------------------------------- */

/* Length of "ID ID ID": the digits plus one space between neighbours. */
static size_t id_list_len(const uint32_t *ids, int n)
{
    size_t total = (size_t)n - 1;
    for (int i = 0; i < n; i++)
        total += decimal_digits(ids[i]);
    return total;
}

size_t m2_reply_prefix_size(slice sender, const uint32_t *ids, int n)
{
    if (n <= 0 || n > M2_MAX_TARGETS)
        return 0;
    size_t list = id_list_len(ids, n);
    /* SENDER ' ' LEN ':' LIST ',' ' ' */
    return sender.n + 1 + decimal_digits(list) + 1 + list + 2;
}

size_t m2_reply_prefix(char *out, slice sender, const uint32_t *ids, int n)
{
    if (n <= 0 || n > M2_MAX_TARGETS)
        return 0;
    char *w = out;

    memcpy(w, sender.p, sender.n);
    w += sender.n;
    *w++ = ' ';
    w += decimal_write(w, id_list_len(ids, n));
    *w++ = ':';
    for (int i = 0; i < n; i++) {
        if (i)
            *w++ = ' ';
        w += decimal_write(w, ids[i]);
    }
    *w++ = ',';
    *w++ = ' ';
    return (size_t)(w - out);
}
