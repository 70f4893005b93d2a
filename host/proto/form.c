/* Query strings, urlencoded bodies and Cookie headers, split into name/value
 * pairs. The inputs come straight from clients, so every byte is checked against
 * len and nothing assumes a terminating NUL. */
#include <string.h>

#include "form.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t form_url_decode(const char *s, size_t len, char *out, int plus_is_space)
{
    size_t r = 0, w = 0;

    while (r < len) {
        char c = s[r];
        if (c == '%' && len - r > 2) {
            int hi = hex_value(s[r + 1]), lo = hex_value(s[r + 2]);
            if (hi >= 0 && lo >= 0) {
                out[w++] = (char)(hi * 16 + lo);
                r += 3;
                continue;
            }
        }
        /* Anything else, a bad escape's '%' included, is copied as it is. */
        out[w++] = (plus_is_space && c == '+') ? ' ' : c;
        r++;
    }
    return w;
}

/* Decodes one "name=value" (or bare "name") segment into scratch and reports it.
 * Decoded text is never longer than its source, so the pairs of one call use at
 * most len bytes of scratch between them. */
static int report_urlencoded_pair(const char *seg, size_t n, char *scratch,
                                  size_t *used, form_pair_fn fn, void *ud)
{
    const char *eq = memchr(seg, '=', n);
    size_t name_n = eq ? (size_t)(eq - seg) : n;
    char *name = scratch + *used;
    size_t name_len = form_url_decode(seg, name_n, name, 1);
    char *value = name + name_len;
    size_t value_len = eq ? form_url_decode(eq + 1, n - name_n - 1, value, 1) : 0;

    *used += name_len + value_len;
    return fn ? fn(ud, slice_make(name, name_len), slice_make(value, value_len)) : 0;
}

int form_parse_urlencoded(const char *s, size_t len, char *scratch, form_pair_fn fn, void *ud)
{
    size_t at = 0, used = 0;
    int pairs = 0;

    while (at < len) {
        const char *amp = memchr(s + at, '&', len - at);
        size_t seg_n = amp ? (size_t)(amp - (s + at)) : len - at;
        if (seg_n > 0) {
            pairs++;
            if (report_urlencoded_pair(s + at, seg_n, scratch, &used, fn, ud))
                break;
        }
        at += seg_n + 1;
    }
    return pairs;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static slice trim_blanks(const char *p, size_t n)
{
    while (n > 0 && is_blank(p[0])) {
        p++;
        n--;
    }
    while (n > 0 && is_blank(p[n - 1]))
        n--;
    return slice_make(p, n);
}

int form_parse_cookies(const char *s, size_t len, form_pair_fn fn, void *ud)
{
    size_t at = 0;
    int pairs = 0;

    while (at < len) {
        const char *semi = memchr(s + at, ';', len - at);
        size_t seg_n = semi ? (size_t)(semi - (s + at)) : len - at;
        const char *seg = s + at, *eq = memchr(seg, '=', seg_n);
        at += seg_n + 1;
        if (!eq)
            continue;   /* "c" alone is not a cookie */

        slice name = trim_blanks(seg, (size_t)(eq - seg));
        slice value = trim_blanks(eq + 1, seg_n - (size_t)(eq - seg) - 1);
        if (value.n >= 2 && value.p[0] == '"' && value.p[value.n - 1] == '"')
            value = slice_make(value.p + 1, value.n - 2);
        pairs++;
        if (fn && fn(ud, name, value))
            break;
    }
    return pairs;
}
