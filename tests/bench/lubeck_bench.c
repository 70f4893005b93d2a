/* lubeck-bench: a load generator that plays Mongrel2 over ZeroMQ.
 *
 * It binds the two sockets Mongrel2 binds (PUSH on --send, SUB on --recv; see
 * docs/protocol.md, Sockets), sends request frames shaped exactly like Mongrel2 1.12's,
 * keeps --window of them in flight, each on its own connection id, and matches
 * the replies (§3) back to their requests by id. When the run ends it prints one
 * line:
 *
 *   requests=N seconds=S rps=R p50_us=A p99_us=B errors=E
 *
 * requests counts replies; errors counts replies whose status is not 2xx/3xx plus
 * requests that got no reply within 5 s. Latency is from just before the send to
 * the arrival of the first reply frame for that id.
 *
 * Exit status: 0 after a run (whatever the errors), 1 when a socket cannot be bound
 * or no handler answered the warm-up request, 2 for a usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NS_PER_SEC 1000000000ull
#define NS_PER_MS 1000000ull

#define REPLY_TIMEOUT_NS (5 * NS_PER_SEC)   /* no reply by then: an error */
#define STALL_NS (5 * NS_PER_SEC)           /* no reply at all by then: give up */
#define WARMUP_TIMEOUT_NS (10 * NS_PER_SEC)
#define WARMUP_RESEND_NS (200 * NS_PER_MS)
#define WARMUP_IDS 64                       /* ids above the pool, one per warm-up try */
#define SWEEP_EVERY_NS (100 * NS_PER_MS)
#define MAX_POLL_MS 10

/* What Mongrel2 would put in the frame for this handler: its send_ident. */
static const char SENDER[] = "8b3e4d2a-6c1f-4e57-9a0b-lubeck0bench";

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lubeck-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (try --help)\n", stderr);
    va_end(ap);
    exit(2);
}

static void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lubeck-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* ---- options ---------------------------------------------------------------- */

typedef struct header {
    char *name;     /* lower-cased, owned */
    char *value;    /* owned */
} header;

typedef struct options {
    const char *send_spec, *recv_spec;
    const char *target;          /* request-target: path plus optional ?query */
    const char *method;
    long body_bytes;
    double duration;             /* seconds; 0 = no time limit */
    long window, connections;
    int tnetstring;
    uint64_t requests;           /* 0 = no count limit */
    header *extra;               /* --header values, in order */
    int n_extra;
} options;

static const char USAGE[] =
    "usage: lubeck-bench --send SPEC --recv SPEC [--path /] [--method GET]\n"
    "                    [--body-bytes N] [--duration S] [--window N]\n"
    "                    [--protocol json|tnetstring] [--connections N]\n"
    "                    [--header 'Name: value' ...] [--requests N]\n"
    "Plays Mongrel2: binds PUSH on --send and SUB on --recv, keeps --window requests\n"
    "(default 100) in flight on --connections ids (default = window), for --duration\n"
    "seconds (default 5) or until --requests replies, then prints\n"
    "  requests=N seconds=S rps=R p50_us=A p99_us=B errors=E\n"
    "--body-bytes makes the default method POST. errors = non-2xx/3xx replies plus\n"
    "requests without a reply within 5 s.\n";

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage_error("%s wants an integer from %ld to %ld, got '%s'", opt, min, max, s);
    return v;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        fatal("out of memory");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* "Name: value" → lower-cased name and value with the blanks after ':' trimmed,
 * the way Mongrel2's HTTP parser hands them on. */
static header parse_header_arg(const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg)
        usage_error("--header wants 'Name: value', got '%s'", arg);
    header h = { xstrndup(arg, (size_t)(colon - arg)), NULL };
    for (char *p = h.name; *p; p++) {
        if (*p == ' ' || *p == '\t' || (unsigned char)*p < 0x21)
            usage_error("--header name must not hold blanks: '%s'", arg);
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    h.value = xstrndup(v, strlen(v));
    return h;
}

/* Every option takes a value. */
static int is_option(const char *s)
{
    static const char *const names[] = {
        "--send", "--recv", "--path", "--method", "--body-bytes", "--duration", "--window",
        "--connections", "--requests", "--protocol", "--header",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i]))
            return 1;
    return 0;
}

static void parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->target = "/";
    o->window = 100;
    int have_duration = 0, have_method = 0;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (!is_option(opt))
            usage_error(strncmp(opt, "--", 2) ? "unexpected argument '%s'"
                                              : "unknown option '%s'", opt);
        if (i + 1 >= argc)
            usage_error("%s needs a value", opt);
        const char *val = argv[++i];
        if (!strcmp(opt, "--send"))
            o->send_spec = val;
        else if (!strcmp(opt, "--recv"))
            o->recv_spec = val;
        else if (!strcmp(opt, "--path"))
            o->target = val;
        else if (!strcmp(opt, "--method")) {
            o->method = val;
            have_method = 1;
        } else if (!strcmp(opt, "--body-bytes"))
            o->body_bytes = parse_long(opt, val, 0, 1L << 30);
        else if (!strcmp(opt, "--duration")) {
            char *end;
            o->duration = strtod(val, &end);
            if (end == val || *end || !(o->duration > 0) || o->duration > 86400)
                usage_error("--duration wants seconds > 0, got '%s'", val);
            have_duration = 1;
        } else if (!strcmp(opt, "--window"))
            o->window = parse_long(opt, val, 1, 1000000);
        else if (!strcmp(opt, "--connections"))
            o->connections = parse_long(opt, val, 1, 10000000);
        else if (!strcmp(opt, "--requests"))
            o->requests = (uint64_t)parse_long(opt, val, 1, 2000000000L);
        else if (!strcmp(opt, "--protocol")) {
            if (!strcmp(val, "json"))
                o->tnetstring = 0;
            else if (!strcmp(val, "tnetstring"))
                o->tnetstring = 1;
            else
                usage_error("--protocol is json or tnetstring, got '%s'", val);
        } else if (!strcmp(opt, "--header")) {
            header *grown = realloc(o->extra, (size_t)(o->n_extra + 1) * sizeof *grown);
            if (!grown)
                fatal("out of memory");
            o->extra = grown;
            o->extra[o->n_extra++] = parse_header_arg(val);
        }
    }

    if (!o->send_spec || !o->recv_spec)
        usage_error("--send and --recv are required");
    if (o->target[0] != '/' || strpbrk(o->target, " \t\r\n\"\\"))
        usage_error("--path must start with '/' and hold no blanks, quotes or backslashes");
    if (!have_method)
        o->method = o->body_bytes > 0 ? "POST" : "GET";
    for (const char *p = o->method; *p; p++)
        if (*p < 'A' || *p > 'Z')
            usage_error("--method must be upper-case letters, got '%s'", o->method);
    if (!*o->method)
        usage_error("--method must not be empty");
    if (!o->connections)
        o->connections = o->window;
    /* Replies are matched by conn id, so two requests in flight can't share one. */
    if (o->connections < o->window)
        usage_error("--connections (%ld) must be at least --window (%ld)",
                    o->connections, o->window);
    if (!have_duration && !o->requests)
        o->duration = 5;
}

/* ---- building the request frame ---------------------------------------------- */

/* A growable byte string; only used while building the frame template, once. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void buf_add(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            fatal("out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
}

/* Mongrel2's JSON escaping: only '\' and '"' (docs/protocol.md, Header keys). */
static void json_string(buf *b, const char *s)
{
    buf_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_add(b, "\\", 1);
        buf_add(b, s, 1);
    }
    buf_add(b, "\"", 1);
}

static void json_pair(buf *b, const char *key, const char *value)
{
    if (b->len > 1)
        buf_add(b, ",", 1);
    json_string(b, key);
    buf_add(b, ":", 1);
    json_string(b, value);
}

static void tnet_string(buf *b, const char *s)
{
    buf_fmt(b, "%zu:", strlen(s));
    buf_str(b, s);
    buf_add(b, ",", 1);
}

/* Wraps a finished tnetstring payload as "LEN:payload<type>". */
static void tnet_wrap(buf *out, const buf *payload, char type)
{
    buf_fmt(out, "%zu:", payload->len);
    buf_add(out, payload->p ? payload->p : "", payload->len);
    buf_add(out, &type, 1);
}

typedef struct header_list {
    header *v;
    int n;
} header_list;

static void list_add(header_list *l, const char *name, const char *value)
{
    header *grown = realloc(l->v, (size_t)(l->n + 1) * sizeof *grown);
    if (!grown)
        fatal("out of memory");
    l->v = grown;
    l->v[l->n++] = (header){ (char *)name, (char *)value };
}

/* The client headers: ~300 bytes a browser would send, then --header values. An
 * extra header replaces a default of the same name; naming it twice makes a
 * repeated header (a JSON array / tnetstring list, as Mongrel2 does). */
static header_list client_headers(const options *o, char *length_text)
{
    header_list l = { NULL, 0 };
    /* Roughly Mongrel2's hash order: x-forwarded-for comes first (§1). */
    list_add(&l, "x-forwarded-for", "127.0.0.1");
    list_add(&l, "host", "localhost:6767");
    list_add(&l, "user-agent",
             "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0");
    list_add(&l, "accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    list_add(&l, "accept-language", "en-US,en;q=0.5");
    list_add(&l, "accept-encoding", "gzip, deflate, br");
    list_add(&l, "cookie", "session=abc; theme=dark; _ga=GA1.1.1234567890.1700000000");
    if (o->body_bytes > 0) {
        list_add(&l, "content-length", length_text);
        list_add(&l, "content-type", "application/octet-stream");
    }
    int defaults = l.n;
    char replaced[16] = { 0 };
    for (int i = 0; i < o->n_extra; i++) {
        const header *x = &o->extra[i];
        int j;
        for (j = 0; j < defaults; j++)
            if (!replaced[j] && !strcmp(l.v[j].name, x->name))
                break;
        if (j < defaults) {
            l.v[j].value = x->value;
            replaced[j] = 1;
        } else
            list_add(&l, x->name, x->value);
    }
    return l;
}

/* Emits each distinct name once, in first-seen order, with all its values. */
static void emit_client_headers(buf *b, const header_list *l, int tnetstring)
{
    for (int i = 0; i < l->n; i++) {
        int seen = 0, count = 0;
        for (int j = 0; j < i; j++)
            seen |= !strcmp(l->v[j].name, l->v[i].name);
        if (seen)
            continue;
        for (int j = i; j < l->n; j++)
            count += !strcmp(l->v[j].name, l->v[i].name);
        if (count == 1) {
            if (tnetstring) {
                tnet_string(b, l->v[i].name);
                tnet_string(b, l->v[i].value);
            } else
                json_pair(b, l->v[i].name, l->v[i].value);
            continue;
        }
        if (tnetstring) {
            buf list = { 0 };
            tnet_string(b, l->v[i].name);
            for (int j = i; j < l->n; j++)
                if (!strcmp(l->v[j].name, l->v[i].name))
                    tnet_string(&list, l->v[j].value);
            tnet_wrap(b, &list, ']');
            free(list.p);
        } else {
            if (b->len > 1)
                buf_add(b, ",", 1);
            json_string(b, l->v[i].name);
            buf_add(b, ":[", 2);
            int first = 1;
            for (int j = i; j < l->n; j++)
                if (!strcmp(l->v[j].name, l->v[i].name)) {
                    if (!first)
                        buf_add(b, ",", 1);
                    json_string(b, l->v[j].value);
                    first = 0;
                }
            buf_add(b, "]", 1);
        }
    }
}

/* Everything after "SENDER ID": " PATH HEADERS BODY". It is the same for every
 * request, so it is built once and only the id in front changes. */
static void build_frame_tail(const options *o, buf *tail)
{
    const char *q = strchr(o->target, '?');
    char *path = xstrndup(o->target, q ? (size_t)(q - o->target) : strlen(o->target));
    const char *query = q ? q + 1 : NULL;
    char length_text[24];
    snprintf(length_text, sizeof length_text, "%ld", o->body_bytes);
    header_list l = client_headers(o, length_text);

    buf h = { 0 };
    if (o->tnetstring) {
        /* Key order as Mongrel2 1.12 emits them (docs/protocol.md, Request frames). */
        buf d = { 0 };
        tnet_string(&d, "REMOTE_ADDR"); tnet_string(&d, "127.0.0.1");
        tnet_string(&d, "METHOD");      tnet_string(&d, o->method);
        tnet_string(&d, "URL_SCHEME");  tnet_string(&d, "http");
        tnet_string(&d, "PATTERN");     tnet_string(&d, "/");
        if (query) {
            tnet_string(&d, "QUERY");   tnet_string(&d, query);
        }
        tnet_string(&d, "URI");         tnet_string(&d, o->target);
        tnet_string(&d, "VERSION");     tnet_string(&d, "HTTP/1.1");
        tnet_string(&d, "PATH");        tnet_string(&d, path);
        emit_client_headers(&d, &l, 1);
        tnet_wrap(&h, &d, '}');
        free(d.p);
    } else {
        buf j = { 0 };
        buf_add(&j, "{", 1);
        json_pair(&j, "PATH", path);
        emit_client_headers(&j, &l, 0);
        json_pair(&j, "METHOD", o->method);
        json_pair(&j, "VERSION", "HTTP/1.1");
        json_pair(&j, "URI", o->target);
        if (query)
            json_pair(&j, "QUERY", query);
        json_pair(&j, "PATTERN", "/");
        json_pair(&j, "URL_SCHEME", "http");
        json_pair(&j, "REMOTE_ADDR", "127.0.0.1");
        buf_add(&j, "}", 1);
        buf_fmt(&h, "%zu:", j.len);
        buf_add(&h, j.p, j.len);
        buf_add(&h, ",", 1);
        free(j.p);
    }

    buf_add(tail, " ", 1);
    buf_str(tail, path);
    buf_add(tail, " ", 1);
    buf_add(tail, h.p, h.len);
    buf_fmt(tail, "%ld:", o->body_bytes);
    static const char filler[] = "lorem ipsum dolor sit amet, consectetur adipiscing\n";
    for (long left = o->body_bytes; left > 0; left -= (long)sizeof filler - 1)
        buf_add(tail, filler, left < (long)sizeof filler - 1 ? (size_t)left : sizeof filler - 1);
    buf_add(tail, ",", 1);

    free(h.p);
    free(l.v);
    free(path);
}

/* ---- latency histogram --------------------------------------------------------- */

/* Log-linear buckets over nanoseconds: exact below 1024 ns, then 512 buckets per
 * power of two (under 0.2% error), up to 2^40 ns. Cheap to add to, no allocation. */
#define SUB_BITS 10
#define MAX_NS ((1ull << 40) - 1)
#define N_BUCKETS (((40 - SUB_BITS + 1) + 1) << (SUB_BITS - 1))

static unsigned bucket_of(uint64_t ns)
{
    if (ns > MAX_NS)
        ns = MAX_NS;
    if (ns < (1u << SUB_BITS))
        return (unsigned)ns;
    unsigned shift = (unsigned)(63 - __builtin_clzll(ns)) - (SUB_BITS - 1);
    return (shift << (SUB_BITS - 1)) + (unsigned)(ns >> shift);
}

static double bucket_mid_ns(unsigned b)
{
    if (b < (1u << SUB_BITS))
        return b;
    unsigned shift = (b >> (SUB_BITS - 1)) - 1;
    uint64_t low = (uint64_t)(b - (shift << (SUB_BITS - 1))) << shift;
    return (double)low + (double)(1ull << shift) / 2;
}

static double percentile_us(const uint64_t *hist, uint64_t count, double p)
{
    if (!count)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < N_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return bucket_mid_ns(b) / 1000.0;
    }
    return bucket_mid_ns(N_BUCKETS - 1) / 1000.0;
}

/* ---- the run --------------------------------------------------------------------- */

typedef struct bench {
    void *push, *sub;
    /* The frame buffer: room for "SENDER ID" right-aligned in front of the fixed
     * tail, so a send writes only the id and the sender, never copies the tail. */
    char *frame;
    size_t room, tail_len;

    uint32_t pool;            /* run ids are 1..pool; warm-up ids follow */
    uint64_t *sent_at;        /* by conn id: send time in ns, 0 = not in flight */
    uint32_t *free_ids;       /* FIFO ring of idle run ids, so every id gets used */
    uint32_t free_head, free_count;
    long inflight;

    uint64_t replies, errors, last_reply_ns;
    uint64_t hist[N_BUCKETS];
    int warm_answered;
    zmq_msg_t msg;
} bench;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Sends the request for conn id; 1 sent, 0 would block (no handler connected yet,
 * since PUSH holds messages back until a peer exists). */
static int send_request(bench *b, uint32_t id)
{
    char *end = b->frame + b->room;
    char *p = end;
    for (uint32_t v = id; p == end || v; v /= 10)
        *--p = (char)('0' + v % 10);
    *--p = ' ';
    p -= sizeof SENDER - 1;
    memcpy(p, SENDER, sizeof SENDER - 1);

    uint64_t t = now_ns();
    if (zmq_send(b->push, p, (size_t)(end - p) + b->tail_len, ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        fatal("send failed: %s", zmq_strerror(errno));
    }
    b->sent_at[id] = t;
    return 1;
}

static void release_id(bench *b, uint32_t id)
{
    if (id == 0 || id > b->pool)
        return;                      /* a warm-up id: never reused */
    b->free_ids[(b->free_head + b->free_count) % b->pool] = id;
    b->free_count++;
    b->inflight--;
}

static void complete(bench *b, uint32_t id, uint64_t now, int ok)
{
    uint64_t sent = b->sent_at[id];
    b->sent_at[id] = 0;
    b->last_reply_ns = now;
    if (id > b->pool) {
        b->warm_answered = 1;        /* warm-up replies are not measured */
        return;
    }
    b->hist[bucket_of(now - sent)]++;
    b->replies++;
    if (!ok)
        b->errors++;
    release_id(b, id);
}

/* A reply frame: "SENDER LEN:ID ID ..., BODY" (docs/protocol.md, Reply frames). Frames that do not
 * start an HTTP response are ignored: the empty close frame, later chunks of a
 * streamed response, and X control messages. */
static void on_reply(bench *b, const char *data, size_t len, uint64_t now)
{
    const char *end = data + len;
    const char *p = memchr(data, ' ', len);
    if (!p)
        return;
    size_t ids_len = 0;
    for (p++; p < end && *p >= '0' && *p <= '9'; p++)
        if ((ids_len = ids_len * 10 + (size_t)(*p - '0')) > len)
            return;                  /* longer than the frame: malformed */
    if (p >= end || *p != ':' || (size_t)(end - p - 1) < ids_len + 1)
        return;
    const char *ids = p + 1, *ids_end = ids + ids_len;
    if (*ids_end != ',')
        return;
    const char *body = ids_end + 1;
    if (body < end && *body == ' ')
        body++;
    size_t body_len = (size_t)(end - body);
    if (body_len < 12 || memcmp(body, "HTTP/", 5) != 0)
        return;
    if (ids_len >= 2 && ids[0] == 'X' && ids[1] == ' ')
        return;

    /* "HTTP/1.1 200 ...": 2xx and 3xx are successes. */
    const char *sp = memchr(body, ' ', body_len < 16 ? body_len : 16);
    int ok = sp && end - sp >= 4 && (sp[1] == '2' || sp[1] == '3') &&
             sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9';

    uint64_t id = 0;
    int digits = 0;
    for (const char *q = ids; q <= ids_end; q++) {
        if (q < ids_end && *q >= '0' && *q <= '9') {
            id = id * 10 + (uint64_t)(*q - '0');
            if (++digits > 10)
                return;              /* not a uint32: a malformed list */
            continue;
        }
        if (digits && id >= 1 && id <= (uint64_t)b->pool + WARMUP_IDS && b->sent_at[id])
            complete(b, (uint32_t)id, now, ok);
        id = 0;
        digits = 0;
    }
}

/* Takes every reply that is already queued; returns how many frames it read. */
static int drain_replies(bench *b)
{
    int n = 0;
    for (;;) {
        int rc = zmq_msg_recv(&b->msg, b->sub, ZMQ_DONTWAIT);
        if (rc < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return n;
            fatal("receive failed: %s", zmq_strerror(errno));
        }
        on_reply(b, zmq_msg_data(&b->msg), zmq_msg_size(&b->msg), now_ns());
        n++;
    }
}

static void wait_for_io(bench *b, int want_send, long timeout_ms)
{
    zmq_pollitem_t items[2] = {
        { b->sub, 0, ZMQ_POLLIN, 0 },
        { b->push, 0, ZMQ_POLLOUT, 0 },
    };
    if (zmq_poll(items, want_send ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
        fatal("poll failed: %s", zmq_strerror(errno));
}

/* Requests with no reply after REPLY_TIMEOUT_NS are errors; their slots are freed.
 * A reply that still comes later for a reused id will be taken as the new one's. */
static void sweep_timeouts(bench *b, uint64_t now)
{
    for (uint32_t id = 1; id <= b->pool; id++)
        if (b->sent_at[id] && now - b->sent_at[id] > REPLY_TIMEOUT_NS) {
            b->sent_at[id] = 0;
            b->errors++;
            release_id(b, id);
        }
}

/* Mongrel2 keeps requests queued until a handler connects, and a handler's PUB
 * drops replies until its connection to our SUB is up; so send a fresh warm-up
 * request every 200 ms until one is answered. */
static void warm_up(bench *b, const options *o)
{
    uint64_t start = now_ns(), next_try = start;
    uint32_t tries = 0;
    int blocked = 0;
    while (!b->warm_answered) {
        uint64_t now = now_ns();
        if (stop_requested)
            exit(1);
        if (now - start > WARMUP_TIMEOUT_NS)
            fatal("no handler answered a request within 10 s (is one connected to %s and %s?)",
                  o->send_spec, o->recv_spec);
        if ((blocked || now >= next_try) && tries < WARMUP_IDS) {
            blocked = !send_request(b, b->pool + 1 + tries);
            if (!blocked) {
                tries++;
                next_try = now + WARMUP_RESEND_NS;
            }
        }
        wait_for_io(b, blocked, 50);
        drain_replies(b);
    }
    /* Replies to the other warm-up tries may still come: make sure they are ignored. */
    for (uint32_t i = 1; i <= WARMUP_IDS; i++)
        b->sent_at[b->pool + i] = 0;
}

static void *bind_socket(void *ctx, int type, const char *spec)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    if (!s)
        fatal("zmq_socket: %s", zmq_strerror(errno));
    /* HWM 0 = unlimited: the window already bounds what is queued, and a full pipe
     * would make zmq block (PUSH) or drop (SUB) instead of measuring the handler. */
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &zero, sizeof zero);
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_bind(s, spec) < 0)
        fatal("cannot bind %s: %s", spec, zmq_strerror(errno));
    return s;
}

int main(int argc, char **argv)
{
    options o;
    parse_options(argc, argv, &o);

    static bench b;              /* static: the histogram is 128 KiB */
    buf tail = { 0 };
    build_frame_tail(&o, &tail);
    b.room = sizeof SENDER + 10;         /* sender, space, up to 10 digits */
    b.tail_len = tail.len;
    b.frame = malloc(b.room + tail.len);
    b.pool = (uint32_t)o.connections;
    b.sent_at = calloc((size_t)b.pool + WARMUP_IDS + 1, sizeof *b.sent_at);
    b.free_ids = malloc((size_t)b.pool * sizeof *b.free_ids);
    if (!b.frame || !b.sent_at || !b.free_ids)
        fatal("out of memory");
    memcpy(b.frame + b.room, tail.p, tail.len);
    free(tail.p);
    for (uint32_t i = 0; i < b.pool; i++)
        b.free_ids[i] = i + 1;
    b.free_count = b.pool;
    zmq_msg_init(&b.msg);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;          /* a second Ctrl-C kills at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *ctx = zmq_ctx_new();
    if (!ctx)
        fatal("zmq_ctx_new: %s", zmq_strerror(errno));
    b.push = bind_socket(ctx, ZMQ_PUSH, o.send_spec);
    b.sub = bind_socket(ctx, ZMQ_SUB, o.recv_spec);

    warm_up(&b, &o);

    uint64_t start = now_ns();
    uint64_t deadline = o.duration > 0 ? start + (uint64_t)(o.duration * 1e9) : UINT64_MAX;
    uint64_t sent = 0, next_sweep = start + SWEEP_EVERY_NS;
    b.last_reply_ns = start;
    int sending = 1, blocked = 0;

    for (;;) {
        uint64_t now = now_ns();
        if (sending && (stop_requested || now >= deadline || (o.requests && sent >= o.requests)))
            sending = 0;
        if (!sending && b.inflight == 0)
            break;

        /* Keep the window full. The oldest idle id goes next. */
        blocked = 0;
        while (sending && b.inflight < o.window && (!o.requests || sent < o.requests)) {
            uint32_t id = b.free_ids[b.free_head];
            if (!send_request(&b, id)) {
                blocked = 1;
                break;
            }
            b.free_head = (b.free_head + 1) % b.pool;
            b.free_count--;
            b.inflight++;
            sent++;
        }

        int got = drain_replies(&b);

        now = now_ns();
        if (now >= next_sweep) {
            sweep_timeouts(&b, now);
            next_sweep = now + SWEEP_EVERY_NS;
            /* The handler went away (or stopped answering altogether): stop rather
             * than wait for requests that will never be answered. */
            if ((b.inflight > 0 || blocked) && now - b.last_reply_ns > STALL_NS) {
                fprintf(stderr, "lubeck-bench: no reply for 5 s; stopping early\n");
                b.errors += (uint64_t)b.inflight;
                break;
            }
        }
        if (got == 0) {
            long ms = MAX_POLL_MS;
            if (sending && deadline != UINT64_MAX) {
                uint64_t left = deadline > now ? deadline - now : 0;
                if (left / NS_PER_MS < (uint64_t)ms)
                    ms = (long)(left / NS_PER_MS);
            }
            wait_for_io(&b, blocked, ms);
        }
    }

    double seconds = (double)(now_ns() - start) / 1e9;
    printf("requests=%llu seconds=%.3f rps=%.0f p50_us=%.1f p99_us=%.1f errors=%llu\n",
           (unsigned long long)b.replies, seconds,
           seconds > 0 ? (double)b.replies / seconds : 0.0,
           percentile_us(b.hist, b.replies, 0.50), percentile_us(b.hist, b.replies, 0.99),
           (unsigned long long)b.errors);
    fflush(stdout);

    zmq_msg_close(&b.msg);
    zmq_close(b.push);
    zmq_close(b.sub);
    zmq_ctx_term(ctx);
    for (int i = 0; i < o.n_extra; i++) {
        free(o.extra[i].name);
        free(o.extra[i].value);
    }
    free(o.extra);
    free(b.frame);
    free(b.sent_at);
    free(b.free_ids);
    return 0;
}
