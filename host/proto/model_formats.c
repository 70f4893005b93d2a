/* The formats a model field can require, checked by their RFCs' grammars
 * rather than by a loose regex: UTF-8 (RFC 3629), email addr-spec (RFC 5321
 * and 5322, without comments or quoted local parts), http(s) URLs (RFC 3986),
 * textual UUIDs (RFC 4122), date-times (RFC 3339, calendar-checked). */
#include "model.h"

#include <string.h>


long model_utf8_length(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    long count = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; count++; continue; }
        size_t need;
        unsigned cp, lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2; cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;          /* no overlongs */
            if (c == 0xED) hi = 0x9F;          /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3; cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;          /* ≤ U+10FFFF */
        } else return -1;
        if (n - i <= need) return -1;
        if (s[i + 1] < lo || s[i + 1] > hi) return -1;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return -1;
        (void)cp;
        i += need + 1;
        count++;
    }
    return count;
}

/* s starts with the lower-case ASCII lit, ignoring case */
static int has_prefix_ci(const char *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++) {
        int c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        if (c != lit[i]) return 0;
    }
    return 1;
}

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* RFC 5322 atext */
static int is_atext(int c)
{
    return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 3986 IPv4address: four dec-octets, no leading zeros. */
static int check_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return 0;
            i++;
        }
        size_t start = i;
        int v = 0;
        while (i < n && is_digit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
        size_t len = i - start;
        if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return 0;
    }
    return i == n;
}

/* RFC 3986 IPv6address: 8 h16 groups, or fewer around one "::", the last 32 bits
 * optionally as an IPv4address. */
static int check_ipv6(const char *s, size_t n)
{
    int groups = 0, gap = 0;
    size_t i = 0;
    if (n >= 2 && s[0] == ':' && s[1] == ':') { gap = 1; i = 2; }
    else if (n >= 1 && s[0] == ':') return 0;
    while (i < n) {
        size_t start = i;
        while (i < n && is_hex(s[i]) && i - start < 4) i++;
        if (i < n && s[i] == '.') {        /* trailing IPv4 */
            if (!check_ipv4(s + start, n - start)) return 0;
            groups += 2;
            i = n;
            break;
        }
        if (i == start) return 0;
        groups++;
        if (i == n) break;
        if (s[i] != ':') return 0;
        i++;
        if (i < n && s[i] == ':') {
            if (gap) return 0;
            gap = 1;
            i++;
            if (i == n) break;
        } else if (i == n) return 0;        /* a lone trailing ':' */
    }
    return gap ? groups <= 7 : groups == 8;
}

/* RFC 1035 host name as RFC 5321 Domain: LDH labels of 1-63 octets. */
static int check_domain(const char *s, size_t n)
{
    if (n == 0 || n > 253) return 0;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-') return 0;
            label = 0;
            continue;
        }
        int c = (unsigned char)s[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-') return 0;
        if (label == 0 && c == '-') return 0;
        label++;
    }
    return 1;
}

int model_check_email(const char *s, size_t n)
{
    if (n < 3 || n > 254) return 0;
    size_t i = 0;
    if (s[0] == '"') {
        /* quoted-string: qtext (printable ASCII but '"' and '\') or quoted-pair */
        i = 1;
        while (i < n && s[i] != '"') {
            int c = (unsigned char)s[i];
            if (c == '\\') {
                if (i + 1 >= n || s[i + 1] < 0x20 || s[i + 1] > 0x7e) return 0;
                i += 2;
                continue;
            }
            if (c < 0x20 || c > 0x7e) return 0;
            i++;
        }
        if (i >= n) return 0;
        i++;
    } else {
        /* dot-atom: atext runs separated by single dots */
        size_t run = 0;
        while (i < n && s[i] != '@') {
            int c = (unsigned char)s[i];
            if (c == '.') {
                if (run == 0) return 0;
                run = 0;
            } else if (is_atext(c)) {
                run++;
            } else return 0;
            i++;
        }
        if (run == 0) return 0;
    }
    if (i > 64 || i >= n || s[i] != '@') return 0;
    const char *d = s + i + 1;
    size_t dn = n - i - 1;
    if (dn >= 2 && d[0] == '[' && d[dn - 1] == ']') {
        if (dn > 7 && memcmp(d + 1, "IPv6:", 5) == 0) return check_ipv6(d + 6, dn - 7);
        return check_ipv4(d + 1, dn - 2);
    }
    return check_domain(d, dn);
}

static int is_unreserved(int c) { return is_alpha(c) || is_digit(c) || (c && strchr("-._~", c)); }
static int is_sub_delim(int c) { return c && strchr("!$&'()*+,;=", c); }

/* Counts chars of s[i..] in the set (extra: more allowed chars), with %XX escapes. */
static size_t uri_run(const char *s, size_t n, size_t i, const char *extra)
{
    while (i < n) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return (size_t)-1;
            i += 3;
        } else if (is_unreserved(c) || is_sub_delim(c) || (c && strchr(extra, c))) {
            i++;
        } else break;
    }
    return i;
}

int model_check_url(const char *s, size_t n)
{
    size_t i;
    if (has_prefix_ci(s, n, "http://")) i = 7;
    else if (has_prefix_ci(s, n, "https://")) i = 8;
    else return 0;
    /* authority = [ userinfo "@" ] host [ ":" port ] */
    size_t auth_end = i;
    while (auth_end < n && s[auth_end] != '/' && s[auth_end] != '?' && s[auth_end] != '#') auth_end++;
    size_t host = i;
    const char *at = NULL;
    for (size_t k = i; k < auth_end; k++)
        if (s[k] == '@') at = s + k;
    if (at) {
        size_t ui = (size_t)(at - s);
        if (uri_run(s, ui, i, ":") != ui) return 0;
        host = ui + 1;
    }
    size_t host_end;
    if (host < auth_end && s[host] == '[') {
        const char *close = memchr(s + host, ']', auth_end - host);
        if (!close) return 0;
        host_end = (size_t)(close - s) + 1;
        const char *ip = s + host + 1;
        size_t ipn = host_end - host - 2;
        if (ipn > 0 && (ip[0] == 'v' || ip[0] == 'V')) {
            /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
            size_t k = 1;
            while (k < ipn && is_hex(ip[k])) k++;
            if (k == 1 || k >= ipn || ip[k] != '.' || k + 1 >= ipn) return 0;
            for (k++; k < ipn; k++)
                if (!is_unreserved((unsigned char)ip[k]) && !is_sub_delim((unsigned char)ip[k]) && ip[k] != ':')
                    return 0;
        } else if (!check_ipv6(ip, ipn)) return 0;
    } else {
        host_end = uri_run(s, auth_end, host, "");
        if (host_end == (size_t)-1) return 0;
        if (host_end == host) return 0;       /* http(s) needs a host */
    }
    if (host_end < auth_end) {
        if (s[host_end] != ':') return 0;
        for (size_t k = host_end + 1; k < auth_end; k++)
            if (!is_digit(s[k])) return 0;
    }
    /* path-abempty, then [ "?" query ] [ "#" fragment ] */
    i = uri_run(s, n, auth_end, ":@/");
    if (i == (size_t)-1) return 0;
    if (i < n && s[i] == '?') {
        i = uri_run(s, n, i + 1, ":@/?");
        if (i == (size_t)-1) return 0;
    }
    if (i < n && s[i] == '#') {
        i = uri_run(s, n, i + 1, ":@/?");
        if (i == (size_t)-1) return 0;
    }
    return i == n;
}

int model_check_uuid(const char *s, size_t n)
{
    if (n != 36) return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!is_hex((unsigned char)s[i])) return 0;
    }
    return 1;
}

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n) return 0;
    int v = 0;
    for (size_t k = 0; k < count; k++) {
        if (!is_digit(s[at + k])) return 0;
        v = v * 10 + (s[at + k] - '0');
    }
    *out = v;
    return 1;
}

int model_check_datetime(const char *s, size_t n)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h, mi, sec;
    if (!digits(s, n, 0, 4, &y) || n < 20 || s[4] != '-' || !digits(s, n, 5, 2, &mo) || s[7] != '-' ||
        !digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s, n, 11, 2, &h) ||
        s[13] != ':' || !digits(s, n, 14, 2, &mi) || s[16] != ':' || !digits(s, n, 17, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return 0;
    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit(s[i])) i++;
        if (i == start) return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == n;
    int oh, om;
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || !digits(s, n, i + 1, 2, &oh) || s[i + 3] != ':' ||
        !digits(s, n, i + 4, 2, &om))
        return 0;
    return oh <= 23 && om <= 59;
}
