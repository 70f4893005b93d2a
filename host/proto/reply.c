#include "reply.h"
#include "decimal.h"

#include <stdio.h>
#include <strings.h>
#include <time.h>

const char *reply_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 422: return "Unprocessable Entity";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

int reply_status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* RFC 9110 token characters: ALPHA, DIGIT and !#$%&'*+-.^_`|~ */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int is_tchar(unsigned char c)
{
    return tchar[c];
}

int reply_header_ok(slice name, slice value)
{
    if (name.n == 0) return 0;
    for (size_t i = 0; i < name.n; i++)
        if (!is_tchar((unsigned char)name.p[i])) return 0;
    for (size_t i = 0; i < value.n; i++)
        if (value.p[i] == '\r' || value.p[i] == '\n' || value.p[i] == '\0') return 0;
    return 1;
}

static int name_is(slice name, const char *lit, size_t n)
{
    return name.n == n && strncasecmp(name.p, lit, n) == 0;
}

int reply_header_reserved(slice name)
{
    return name_is(name, "content-length", 14) || name_is(name, "transfer-encoding", 17) ||
           name_is(name, "date", 4) || name_is(name, "connection", 10);
}

/* "Date: Sat, 28 Nov 2026 08:29:11 GMT\r\n", recomputed once a second. */
static const char *date_line(double now, size_t *len)
{
    static char line[64];
    static size_t line_len;
    static time_t cached = (time_t)-1;
    time_t t = (time_t)now;
    if (t != cached) {
        struct tm tm;
        gmtime_r(&t, &tm);
        line_len = strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        cached = t;
    }
    *len = line_len;
    return line;
}

static const char CONN_CLOSE[] = "Connection: close\r\n";
static const char CONN_KEEP[] = "Connection: keep-alive\r\n";
static const char CHUNKED[] = "Transfer-Encoding: chunked\r\n";
static const char CONTENT_LENGTH[] = "Content-Length: ";

size_t reply_head_size(const reply_spec *s)
{
    size_t n = sizeof "HTTP/1.1 000 \r\n" - 1 + strlen(reply_reason(s->status));
    size_t date_len;
    date_line(s->now, &date_len);
    n += date_len;
    for (int i = 0; i < s->nheaders; i++) {
        slice name = s->headers[2 * i], value = s->headers[2 * i + 1];
        if (reply_header_reserved(name)) continue;
        n += name.n + 2 + value.n + 2;
    }
    if (s->chunked)
        n += sizeof CHUNKED - 1;
    else if (s->until_close)
        ;
    else if (reply_status_has_body(s->status))
        n += sizeof CONTENT_LENGTH - 1 + decimal_digits(s->content_length) + 2;
    if (s->conn == REPLY_CONN_CLOSE) n += sizeof CONN_CLOSE - 1;
    if (s->conn == REPLY_CONN_KEEP_ALIVE) n += sizeof CONN_KEEP - 1;
    return n + 2;
}

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

size_t reply_write_head(char *out, const reply_spec *s)
{
    char *o = out;
    int status = s->status;
    if (status < 100 || status > 999) status = 500;
    o = put(o, s->http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    *o++ = (char)('0' + status / 100);
    *o++ = (char)('0' + status / 10 % 10);
    *o++ = (char)('0' + status % 10);
    *o++ = ' ';
    const char *reason = reply_reason(s->status);
    o = put(o, reason, strlen(reason));
    o = put(o, "\r\n", 2);
    size_t date_len;
    const char *date = date_line(s->now, &date_len);
    o = put(o, date, date_len);
    for (int i = 0; i < s->nheaders; i++) {
        slice name = s->headers[2 * i], value = s->headers[2 * i + 1];
        if (reply_header_reserved(name)) continue;
        o = put(o, name.p, name.n);
        o = put(o, ": ", 2);
        o = put(o, value.p, value.n);
        o = put(o, "\r\n", 2);
    }
    if (s->chunked) {
        o = put(o, CHUNKED, sizeof CHUNKED - 1);
    } else if (s->until_close) {
        /* no framing: the end of the connection ends the body */
    } else if (reply_status_has_body(s->status)) {
        o = put(o, CONTENT_LENGTH, sizeof CONTENT_LENGTH - 1);
        o += decimal_write(o, s->content_length);
        o = put(o, "\r\n", 2);
    }
    if (s->conn == REPLY_CONN_CLOSE) o = put(o, CONN_CLOSE, sizeof CONN_CLOSE - 1);
    if (s->conn == REPLY_CONN_KEEP_ALIVE) o = put(o, CONN_KEEP, sizeof CONN_KEEP - 1);
    o = put(o, "\r\n", 2);
    return (size_t)(o - out);
}
