/* Model schemas and the validator walk (see model.h). Every input byte comes
 * from a client: lengths are explicit, nothing assumes a terminating NUL, and
 * the walk's depth is bounded by the schema's, never by the input's. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN_MATCH_LIMIT 200000   /* backtracking steps per match */

typedef struct choice {
    char *s;
    size_t n;
} choice;

struct model_field {
    model_kind kind;
    unsigned has_min : 1, has_max : 1, required : 1, is_private : 1, has_default : 1;
    double min, max;
    long default_ref;
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    choice *choices;
    int nchoices;
    model_field *item;            /* MODEL_LIST: owned */
    const model *object;          /* MODEL_OBJECT: borrowed */
};

typedef struct named_field {
    char *name;
    size_t len;
    model_field *f;
} named_field;

struct model {
    named_field *fields;
    int n;
};

/* ---- building ------------------------------------------------------------------ */

model *model_new(void)
{
    return calloc(1, sizeof(model));
}

int model_nfields(const model *m)
{
    return m->n;
}

int model_add(model *m, const char *name, size_t len, model_field *f, char *err, size_t errlen)
{
    for (int i = 0; i < m->n; i++)
        if (m->fields[i].len == len && memcmp(m->fields[i].name, name, len) == 0) {
            snprintf(err, errlen, "field '%.*s' is declared twice", (int)len, name);
            model_field_free(f);
            return -1;
        }
    if (model_field_depth(f) > MODEL_MAX_DEPTH) {
        snprintf(err, errlen, "field '%.*s' nests deeper than %d levels", (int)len, name, MODEL_MAX_DEPTH);
        model_field_free(f);
        return -1;
    }
    named_field *grown = realloc(m->fields, (size_t)(m->n + 1) * sizeof *grown);
    char *copy = malloc(len + 1);
    if (!grown || !copy) {
        if (grown) m->fields = grown;
        free(copy);
        model_field_free(f);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    m->fields = grown;
    m->fields[m->n++] = (named_field){ copy, len, f };
    return 0;
}

void model_free(model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        free(m->fields[i].name);
        model_field_free(m->fields[i].f);
    }
    free(m->fields);
    free(m);
}

model_field *model_field_new(model_kind kind)
{
    model_field *f = calloc(1, sizeof *f);
    if (f) f->kind = kind;
    return f;
}

void model_field_free(model_field *f)
{
    if (!f) return;
    if (f->md) pcre2_match_data_free(f->md);
    if (f->mctx) pcre2_match_context_free(f->mctx);
    if (f->re) pcre2_code_free(f->re);
    for (int i = 0; i < f->nchoices; i++) free(f->choices[i].s);
    free(f->choices);
    model_field_free(f->item);
    free(f);
}

void model_field_bounds(model_field *f, int has_min, double min, int has_max, double max)
{
    f->has_min = has_min != 0;
    f->min = min;
    f->has_max = has_max != 0;
    f->max = max;
}

void model_field_flags(model_field *f, int required, int is_private)
{
    f->required = required != 0;
    f->is_private = is_private != 0;
}

void model_field_default(model_field *f, long ref)
{
    f->has_default = 1;
    f->default_ref = ref;
}

int model_field_pattern(model_field *f, const char *re, size_t len, char *err, size_t errlen)
{
    int code;
    PCRE2_SIZE at;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, len, PCRE2_UTF, &code, &at, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "bad pattern at offset %zu: %s", (size_t)at, (char *)msg);
        return -1;
    }
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);   /* the interpreter serves if JIT is unavailable */
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    if (!md || !mctx) {
        if (md) pcre2_match_data_free(md);
        if (mctx) pcre2_match_context_free(mctx);
        pcre2_code_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (f->re) pcre2_code_free(f->re);
    if (f->md) pcre2_match_data_free(f->md);
    if (f->mctx) pcre2_match_context_free(f->mctx);
    pcre2_set_match_limit(mctx, PATTERN_MATCH_LIMIT);
    pcre2_set_depth_limit(mctx, PATTERN_MATCH_LIMIT / 10);
    f->re = c;
    f->md = md;
    f->mctx = mctx;
    return 0;
}

int model_field_choice(model_field *f, const char *s, size_t len)
{
    choice *grown = realloc(f->choices, (size_t)(f->nchoices + 1) * sizeof *grown);
    if (!grown) return -1;
    f->choices = grown;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, s, len);
    copy[len] = '\0';
    f->choices[f->nchoices++] = (choice){ copy, len };
    return 0;
}

void model_field_item(model_field *list, model_field *item)
{
    model_field_free(list->item);
    list->item = item;
}

void model_field_object(model_field *f, const model *m)
{
    f->object = m;
}

static int model_depth(const model *m, int limit);

int model_field_depth(const model_field *f)
{
    if (f->kind == MODEL_LIST) return 1 + (f->item ? model_field_depth(f->item) : 0);
    if (f->kind == MODEL_OBJECT) return 1 + (f->object ? model_depth(f->object, MODEL_MAX_DEPTH) : 0);
    return 1;
}

static int model_depth(const model *m, int limit)
{
    int d = 0;
    if (limit <= 0) return MODEL_MAX_DEPTH + 1;
    for (int i = 0; i < m->n; i++) {
        int k = model_field_depth(m->fields[i].f);
        if (k > d) d = k;
    }
    return d;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* ---- the walk ------------------------------------------------------------------- */

typedef struct walker {
    const model_io *io;
    int errors;
    int build;              /* still building the output: no error so far */
    size_t plen;
    char path[512];
} walker;

static void report(walker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(walker *w, const char *fmt, ...)
{
    w->build = 0;
    if (w->errors >= MODEL_MAX_ERRORS) return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->path[w->plen] = '\0';
    w->io->error(w->io->ud, w->path, msg);
    w->errors++;
}

/* Appends ".name" (or "name" at the root); returns the length to restore. */
static size_t path_push(walker *w, const char *name, size_t len)
{
    size_t saved = w->plen, room = sizeof w->path - 1 - w->plen;
    if (saved > 0 && room > 0) {
        w->path[w->plen++] = '.';
        room--;
    }
    if (len > room) len = room;
    memcpy(w->path + w->plen, name, len);
    w->plen += len;
    return saved;
}

static size_t path_push_index(walker *w, long i)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%ld", i);
    return path_push(w, num, (size_t)n);
}

/* 200 → "200", 0.5 → "0.5" */
static const char *fmt_num(char *buf, size_t len, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, len, "%.0f", v);
    else snprintf(buf, len, "%g", v);
    return buf;
}

/* unit: "characters" or "items" (or NULL for a value); singular for 1 */
static int bounds_ok(walker *w, const model_field *f, double v, const char *unit)
{
    char b[40];
    int ulen = unit ? (int)strlen(unit) : 0;
    if (f->has_min && v < f->min) {
        if (unit) report(w, "must have at least %s %.*s", fmt_num(b, sizeof b, f->min), ulen - (f->min == 1), unit);
        else report(w, "must be at least %s", fmt_num(b, sizeof b, f->min));
        return 0;
    }
    if (f->has_max && v > f->max) {
        if (unit) report(w, "must have at most %s %.*s", fmt_num(b, sizeof b, f->max), ulen - (f->max == 1), unit);
        else report(w, "must be at most %s", fmt_num(b, sizeof b, f->max));
        return 0;
    }
    return 1;
}

static const char *kind_article(model_kind k)
{
    switch (k) {
    case MODEL_EMAIL: return "must be an email address";
    case MODEL_URL: return "must be an http or https URL";
    case MODEL_UUID: return "must be a UUID";
    case MODEL_DATETIME: return "must be an RFC 3339 date-time";
    default: return "must be a string";
    }
}

static int walk_string(walker *w, const model_field *f, model_type t)
{
    const model_io *io = w->io;
    if (t != MODEL_T_STRING) {
        report(w, "%s", kind_article(f->kind));
        return -1;
    }
    size_t len;
    const char *s = io->string(io->ud, &len);
    long chars = model_utf8_length(s, len);
    if (chars < 0) {
        report(w, "is not valid UTF-8");
        return -1;
    }
    if (!bounds_ok(w, f, (double)chars, "characters")) return -1;
    int ok = 1;
    switch (f->kind) {
    case MODEL_EMAIL: ok = model_check_email(s, len); break;
    case MODEL_URL: ok = model_check_url(s, len); break;
    case MODEL_UUID: ok = model_check_uuid(s, len); break;
    case MODEL_DATETIME: ok = model_check_datetime(s, len); break;
    default: break;
    }
    if (!ok) {
        report(w, "%s", kind_article(f->kind));
        return -1;
    }
    if (f->nchoices > 0) {
        int hit = 0;
        for (int i = 0; i < f->nchoices && !hit; i++)
            hit = f->choices[i].n == len && memcmp(f->choices[i].s, s, len) == 0;
        if (!hit) {
            char list[200];
            size_t used = 0;
            for (int i = 0; i < f->nchoices && used < sizeof list - 1; i++) {
                int k = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", f->choices[i].s);
                if (k < 0) break;
                used += (size_t)k;
            }
            if (used >= sizeof list) memcpy(list + sizeof list - 4, "...", 4);
            report(w, "must be one of: %s", list);
            return -1;
        }
    }
    if (f->re) {
        int rc = pcre2_match(f->re, (PCRE2_SPTR)s, len, 0, PCRE2_NO_UTF_CHECK, f->md, f->mctx);
        if (rc < 0) {
            if (rc == PCRE2_ERROR_NOMATCH) report(w, "does not match the pattern");
            else report(w, "could not be matched against the pattern");
            return -1;
        }
    }
    if (w->build) io->put_copy(io->ud);
    return 0;
}

/* The JSON number grammar, for form input: "-12", "3.5", "1e3". */
static int parse_number(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf) return 0;
    size_t i = 0;
    if (s[i] == '-') i++;
    size_t int_start = i;
    while (i < n && is_digit(s[i])) i++;
    if (i == int_start || (s[int_start] == '0' && i - int_start > 1)) return 0;
    if (i < n && s[i] == '.') {
        size_t k = ++i;
        while (i < n && is_digit(s[i])) i++;
        if (i == k) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t k = i;
        while (i < n && is_digit(s[i])) i++;
        if (i == k) return 0;
    }
    if (i != n) return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return 1;
}

static int walk_number(walker *w, const model_field *f, model_type t)
{
    const model_io *io = w->io;
    const char *what = f->kind == MODEL_INTEGER ? "must be an integer" : "must be a number";
    double v;
    if (t == MODEL_T_NUMBER) {
        v = io->number(io->ud);
    } else if (t == MODEL_T_STRING && io->coerce) {
        size_t len;
        const char *s = io->string(io->ud, &len);
        if (!parse_number(s, len, &v)) {
            report(w, "%s", what);
            return -1;
        }
    } else {
        report(w, "%s", what);
        return -1;
    }
    if (!isfinite(v)) {
        report(w, "must be a finite number");
        return -1;
    }
    if (f->kind == MODEL_INTEGER) {
        if (v != floor(v)) {
            report(w, "%s", what);
            return -1;
        }
        if (fabs(v) > MODEL_MAX_INTEGER) {
            report(w, "must be an integer between -2^53 and 2^53");
            return -1;
        }
    }
    if (!bounds_ok(w, f, v, NULL)) return -1;
    if (w->build) io->put_number(io->ud, v);
    return 0;
}

static int walk_boolean(walker *w, model_type t)
{
    const model_io *io = w->io;
    int v = -1;
    if (t == MODEL_T_BOOLEAN) {
        v = io->boolean(io->ud) != 0;
    } else if (t == MODEL_T_STRING && io->coerce) {
        static const char *yes[] = { "true", "1", "on", "yes" }, *no[] = { "false", "0", "off", "no" };
        size_t len;
        const char *s = io->string(io->ud, &len);
        for (int i = 0; i < 4; i++) {
            if (strlen(yes[i]) == len && memcmp(yes[i], s, len) == 0) v = 1;
            if (strlen(no[i]) == len && memcmp(no[i], s, len) == 0) v = 0;
        }
    }
    if (v < 0) {
        report(w, "must be true or false");
        return -1;
    }
    if (w->build) io->put_boolean(io->ud, v);
    return 0;
}

static int walk_value(walker *w, const model_field *f);
static int walk_model(walker *w, const model *m);

static int walk_list(walker *w, const model_field *f, model_type t)
{
    const model_io *io = w->io;
    long n = t == MODEL_T_TABLE ? io->seq_len(io->ud) : -1;
    if (n < 0) {
        report(w, "must be a list");
        return -1;
    }
    if (!bounds_ok(w, f, (double)n, "items")) return -1;
    if (w->build) io->new_list(io->ud, n);
    int failed = 0;
    for (long i = 1; i <= n && w->errors < MODEL_MAX_ERRORS; i++) {
        size_t saved = path_push_index(w, i);
        io->push_index(io->ud, i);
        if (f->item && walk_value(w, f->item) != 0) failed = 1;
        else if (w->build) io->set_index(io->ud, i);
        io->pop(io->ud);
        w->plen = saved;
    }
    return failed || w->errors >= MODEL_MAX_ERRORS ? -1 : 0;
}

static int walk_value(walker *w, const model_field *f)
{
    model_type t = w->io->type(w->io->ud);
    switch (f->kind) {
    case MODEL_INTEGER:
    case MODEL_NUMBER:
        return walk_number(w, f, t);
    case MODEL_BOOLEAN:
        return walk_boolean(w, t);
    case MODEL_LIST:
        return walk_list(w, f, t);
    case MODEL_OBJECT:
        if (t != MODEL_T_TABLE || w->io->seq_len(w->io->ud) > 0) {
            report(w, "must be an object");
            return -1;
        }
        return f->object ? walk_model(w, f->object) : -1;
    default:
        return walk_string(w, f, t);
    }
}

static int is_absent(const model_io *io, const model_field *f, model_type t)
{
    if (t == MODEL_T_ABSENT || t == MODEL_T_NULL) return 1;
    if (io->coerce && t == MODEL_T_STRING && f->kind != MODEL_STRING) {
        size_t len;
        io->string(io->ud, &len);
        return len == 0;   /* a form's empty input for a number, date, ... */
    }
    return 0;
}

static int walk_model(walker *w, const model *m)
{
    const model_io *io = w->io;
    int errors_before = w->errors;
    if (w->build) io->new_object(io->ud, m->n);
    for (int i = 0; i < m->n && w->errors < MODEL_MAX_ERRORS; i++) {
        const named_field *nf = &m->fields[i];
        const model_field *f = nf->f;
        size_t saved = path_push(w, nf->name, nf->len);
        io->push_field(io->ud, nf->name, nf->len);
        model_type t = io->type(io->ud);
        if (is_absent(io, f, t)) {
            if (f->has_default) {
                if (w->build) {
                    io->put_default(io->ud, f->default_ref);
                    io->set_field(io->ud, nf->name, nf->len);
                }
            } else if (f->required) {
                report(w, "is required");
            }
        } else if (walk_value(w, f) == 0 && w->build) {
            io->set_field(io->ud, nf->name, nf->len);
        }
        io->pop(io->ud);
        w->plen = saved;
    }
    return w->errors > errors_before ? -1 : 0;
}

int model_validate(const model *m, const model_io *io)
{
    walker w = { .io = io, .build = 1 };
    model_type t = io->type(io->ud);
    if (t != MODEL_T_TABLE || io->seq_len(io->ud) > 0) {
        report(&w, "must be an object");
        return w.errors;
    }
    walk_model(&w, m);
    return w.errors;
}

/* ---- JSON that decoders accept but an API should not ------------------------------- */

typedef struct json_key {
    const char *p;
    size_t n;
} json_key;

static int key_cmp(const void *a, const void *b)
{
    const json_key *x = a, *y = b;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return memcmp(x->p, y->p, x->n);
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *s, size_t n, size_t at, unsigned *out)
{
    if (at + 4 > n) return 0;
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        int c = (unsigned char)s[at + k];
        if (!is_hex(c)) return 0;
        v = v * 16 + (unsigned)(is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    *out = v;
    return 1;
}

/* Reads the string starting after its opening quote at *i; when out is given,
 * writes the unescaped bytes there (never more than the raw length). Returns
 * the unescaped length, or (size_t)-1 if the string does not end. */
static size_t json_string(const char *s, size_t n, size_t *i, char *out)
{
    size_t w = 0, k = *i;
    while (k < n && s[k] != '"') {
        if (s[k] != '\\') {
            if (out) out[w] = s[k];
            w++, k++;
            continue;
        }
        if (k + 1 >= n) return (size_t)-1;
        char e = s[k + 1];
        unsigned cp;
        if (e == 'u' && hex4(s, n, k + 2, &cp)) {
            k += 6;
            unsigned lo;
            if (cp >= 0xD800 && cp <= 0xDBFF && k + 1 < n && s[k] == '\\' && s[k + 1] == 'u' &&
                hex4(s, n, k + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            }
            char tmp[4];
            size_t len = put_utf8(tmp, cp);
            if (out) memcpy(out + w, tmp, len);
            w += len;
            continue;
        }
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *hit = e ? strchr(from, e) : NULL;
        if (out) out[w] = hit ? to[hit - from] : e;
        w++;
        k += 2;
    }
    if (k >= n) return (size_t)-1;
    *i = k + 1;
    return w;
}

int model_json_check(const char *s, size_t n, int max_depth, char *err, size_t errlen)
{
    enum { IN_ARRAY, IN_OBJECT };
    int rc = -1, depth = 0;
    char *arena = malloc(n ? n : 1);
    json_key *keys = NULL;
    size_t nkeys = 0, capkeys = 0, used = 0;
    /* per level: container kind and where its keys start */
    size_t *frame_start = malloc((size_t)(max_depth + 1) * sizeof *frame_start);
    unsigned char *frame_kind = malloc((size_t)max_depth + 1);
    int expect_key = 0;
    if (!arena || !frame_start || !frame_kind) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth >= max_depth) {
                snprintf(err, errlen, "nested deeper than %d levels", max_depth);
                goto done;
            }
            frame_kind[depth] = c == '{' ? IN_OBJECT : IN_ARRAY;
            frame_start[depth] = nkeys;
            depth++;
            expect_key = c == '{';
            i++;
        } else if (c == '}' || c == ']') {
            if (depth > 0) {
                depth--;
                if (frame_kind[depth] == IN_OBJECT) {
                    size_t first = frame_start[depth], count = nkeys - first;
                    if (count > 1) {
                        qsort(keys + first, count, sizeof *keys, key_cmp);
                        for (size_t k = first + 1; k < nkeys; k++)
                            if (key_cmp(&keys[k - 1], &keys[k]) == 0) {
                                snprintf(err, errlen, "duplicate key \"%.*s\"",
                                         (int)(keys[k].n > 60 ? 60 : keys[k].n), keys[k].p);
                                goto done;
                            }
                    }
                    if (count > 0) used = (size_t)(keys[first].p - arena);
                    for (size_t k = first; k < nkeys; k++)   /* keys are not in arena order after qsort */
                        if ((size_t)(keys[k].p - arena) < used) used = (size_t)(keys[k].p - arena);
                    nkeys = first;
                }
            }
            expect_key = 0;
            i++;
        } else if (c == ',') {
            expect_key = depth > 0 && frame_kind[depth - 1] == IN_OBJECT;
            i++;
        } else if (c == '"') {
            i++;
            if (expect_key) {
                size_t len = json_string(s, n, &i, arena + used);
                if (len == (size_t)-1) break;
                if (nkeys == capkeys) {
                    size_t cap = capkeys ? capkeys * 2 : 64;
                    json_key *grown = realloc(keys, cap * sizeof *grown);
                    if (!grown) {
                        snprintf(err, errlen, "out of memory");
                        goto done;
                    }
                    keys = grown;
                    capkeys = cap;
                }
                keys[nkeys++] = (json_key){ arena + used, len };
                used += len;
                expect_key = 0;
            } else if (json_string(s, n, &i, NULL) == (size_t)-1) {
                break;
            }
        } else {
            i++;
        }
    }
    rc = 0;
done:
    free(arena);
    free(keys);
    free(frame_start);
    free(frame_kind);
    return rc;
}
