/* multipart/form-data (see multipart.h). The input is a client's body: every
 * read is checked against its length; a body that never closes is an error,
 * not a wait for more. */
#define _GNU_SOURCE
#include "multipart.h"

#include <string.h>
#include <strings.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int ci_prefix(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)s[i]) != lit[i]) return 0;
    return 1;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* RFC 2046 bchars */
static int is_bchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("'()+_,-./:=? ", c));
}

/* Reads a parameter value at s[*i]: a token, or a quoted-string whose
 * backslash escapes are undone. Writes at most cap bytes to out; returns the
 * length, or -1 if too long or unterminated. */
static long param_value(const char *s, size_t n, size_t *i, char *out, size_t cap)
{
    size_t k = *i, w = 0;
    if (k < n && s[k] == '"') {
        k++;
        while (k < n && s[k] != '"') {
            if (s[k] == '\\' && k + 1 < n) k++;
            if (w >= cap) return -1;
            out[w++] = s[k++];
        }
        if (k >= n) return -1;
        k++;
    } else {
        while (k < n && s[k] != ';' && !is_space(s[k])) {
            if (w >= cap) return -1;
            out[w++] = s[k++];
        }
    }
    *i = k;
    return (long)w;
}

int multipart_boundary(const char *ct, size_t n, slice *boundary)
{
    if (!ci_prefix(ct, n, "multipart/form-data")) return -1;
    size_t i = 19;
    while (i < n) {
        while (i < n && (is_space(ct[i]) || ct[i] == ';')) i++;
        if (ci_prefix(ct + i, n - i, "boundary=")) {
            i += 9;
            const char *start;
            size_t len;
            if (i < n && ct[i] == '"') {
                start = ct + i + 1;
                const char *end = memchr(start, '"', n - i - 1);
                if (!end) return -1;
                len = (size_t)(end - start);
            } else {
                start = ct + i;
                len = 0;
                while (i + len < n && ct[i + len] != ';' && !is_space(ct[i + len])) len++;
            }
            if (len < 1 || len > 70 || start[len - 1] == ' ') return -1;
            for (size_t k = 0; k < len; k++)
                if (!is_bchar((unsigned char)start[k])) return -1;
            *boundary = slice_make(start, len);
            return 0;
        }
        while (i < n && ct[i] != ';') i++;
    }
    return -1;
}

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* filename*=UTF-8''na%C3%AFve.txt (RFC 5987 / 8187) */
static long ext_value(const char *v, size_t n, char *out, size_t cap)
{
    const char *q = memchr(v, '\'', n);
    if (!q) return -1;
    const char *q2 = memchr(q + 1, '\'', n - (size_t)(q + 1 - v));
    if (!q2) return -1;
    size_t i = (size_t)(q2 + 1 - v), w = 0;
    while (i < n) {
        if (w >= cap) return -1;
        if (v[i] == '%' && i + 2 < n + 0 && hexv((unsigned char)v[i + 1]) >= 0 &&
            hexv((unsigned char)v[i + 2]) >= 0) {
            out[w++] = (char)(hexv((unsigned char)v[i + 1]) * 16 + hexv((unsigned char)v[i + 2]));
            i += 3;
        } else {
            out[w++] = v[i++];
        }
    }
    return (long)w;
}

/* Content-Disposition: form-data; name="x"; filename="a.txt" */
static int disposition(const char *s, size_t n, multipart_part *p)
{
    size_t i = 0;
    while (i < n && is_space(s[i])) i++;
    if (!ci_prefix(s + i, n - i, "form-data")) return -1;
    i += 9;
    int have_ext = 0;
    while (i < n) {
        while (i < n && (is_space(s[i]) || s[i] == ';')) i++;
        size_t key = i;
        while (i < n && s[i] != '=' && s[i] != ';') i++;
        if (i >= n || s[i] != '=') continue;
        size_t klen = i - key;
        while (klen > 0 && is_space(s[key + klen - 1])) klen--;
        i++;
        while (i < n && is_space(s[i])) i++;
        char tmp[MULTIPART_MAX_NAME];
        long len = param_value(s, n, &i, tmp, sizeof tmp);
        if (len < 0) return -1;
        if (klen == 4 && ci_prefix(s + key, klen, "name")) {
            memcpy(p->name_buf, tmp, (size_t)len);
            p->name = slice_make(p->name_buf, (size_t)len);
        } else if (klen == 8 && ci_prefix(s + key, klen, "filename") && !have_ext) {
            memcpy(p->filename_buf, tmp, (size_t)len);
            p->filename = slice_make(p->filename_buf, (size_t)len);
        } else if (klen == 9 && ci_prefix(s + key, klen, "filename*")) {
            long k = ext_value(tmp, (size_t)len, p->filename_buf, sizeof p->filename_buf);
            if (k >= 0) {
                p->filename = slice_make(p->filename_buf, (size_t)k);
                have_ext = 1;
            }
        }
    }
    return 0;
}

/* The head of a part: lines up to the empty one. Returns 0 or -1. */
static int part_head(const char *s, size_t n, multipart_part *p)
{
    size_t i = 0;
    while (i < n) {
        const char *eol = memmem(s + i, n - i, "\r\n", 2);
        size_t end = eol ? (size_t)(eol - s) : n;
        const char *line = s + i;
        size_t len = end - i;
        const char *colon = memchr(line, ':', len);
        if (!colon) return -1;
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        while (vlen > 0 && is_space(*v)) v++, vlen--;
        while (vlen > 0 && is_space(v[vlen - 1])) vlen--;
        if (nlen == 19 && ci_prefix(line, nlen, "content-disposition")) {
            if (disposition(v, vlen, p) != 0) return -1;
        } else if (nlen == 12 && ci_prefix(line, nlen, "content-type")) {
            p->content_type = slice_make(v, vlen);
        }
        i = end + 2;
    }
    return 0;
}

int multipart_parse(const char *body, size_t n, slice boundary, multipart_fn fn, void *ud,
                    const char **err)
{
    /* The delimiter is CRLF "--" boundary; the first may open the body. */
    char delim[2 + 2 + 70];
    if (boundary.n < 1 || boundary.n > 70) {
        *err = "bad multipart boundary";
        return -1;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary.p, boundary.n);
    size_t dlen = 4 + boundary.n;

    size_t at;
    if (n >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        at = dlen - 2;
    } else {
        const char *first = memmem(body, n, delim, dlen);
        if (!first) {
            *err = "multipart body without its boundary";
            return -1;
        }
        at = (size_t)(first - body) + dlen;
    }
    int parts = 0;
    multipart_part p;
    for (;;) {
        /* after a delimiter: "--" closes; else padding, then CRLF */
        if (n - at >= 2 && body[at] == '-' && body[at + 1] == '-') return parts;
        while (at < n && is_space(body[at])) at++;
        if (n - at < 2 || body[at] != '\r' || body[at + 1] != '\n') {
            *err = "multipart body without a closing boundary";
            return -1;
        }
        at += 2;
        const char *head_end;
        if (n - at >= 2 && body[at] == '\r' && body[at + 1] == '\n') head_end = body + at;   /* no headers */
        else {
            size_t limit = n - at < MULTIPART_MAX_HEAD ? n - at : MULTIPART_MAX_HEAD;
            const char *e = memmem(body + at, limit, "\r\n\r\n", 4);
            if (!e) {
                *err = "multipart part without an end to its headers";
                return -1;
            }
            head_end = e + 2;
        }
        p.name = p.filename = p.content_type = slice_make(NULL, 0);
        if (part_head(body + at, (size_t)(head_end - (body + at)), &p) != 0) {
            *err = "malformed multipart part headers";
            return -1;
        }
        at = (size_t)(head_end - body) + 2;
        const char *next = memmem(body + at, n - at, delim, dlen);
        if (!next) {
            *err = "multipart body without a closing boundary";
            return -1;
        }
        p.body = slice_make(body + at, (size_t)(next - (body + at)));
        at = (size_t)(next - body) + dlen;
        if (p.name.p) {
            if (++parts > MULTIPART_MAX_PARTS) {
                *err = "too many multipart parts";
                return -1;
            }
            if (fn && fn(ud, &p)) return parts;
        }
    }
}
