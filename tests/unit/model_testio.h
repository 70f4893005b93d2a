/* A model_io over plain C values, for test_model.c and fuzz_model.c: inputs are
 * written as JSON text (parsed by a small parser here), the cleaned output is
 * serialised back to compact JSON, and errors are collected as "path: msg\n". */
#ifndef LUBECK_MODEL_TESTIO_H
#define LUBECK_MODEL_TESTIO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct tv {
    model_type t;
    int b;
    double n;
    char *s;              /* strings; object keys live in keys[] */
    size_t sn;
    struct tv *kids;      /* list items / object values */
    char **keys;
    size_t *keylens;
    long nkids;
} tv;

static void tv_free(tv *v)
{
    if (!v) return;
    for (long i = 0; i < v->nkids; i++) {
        tv_free(&v->kids[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->kids);
    free(v->keys);
    free(v->keylens);
    free(v->s);
}

typedef struct tparse {
    const char *p, *end;
    int depth;
} tparse;

static void tp_ws(tparse *tp)
{
    while (tp->p < tp->end && (*tp->p == ' ' || *tp->p == '\n' || *tp->p == '\t' || *tp->p == '\r')) tp->p++;
}

static int tp_string(tparse *tp, char **out, size_t *outn)
{
    if (tp->p >= tp->end || *tp->p != '"') return -1;
    tp->p++;
    char *buf = malloc((size_t)(tp->end - tp->p) + 1);
    size_t n = 0;
    while (tp->p < tp->end && *tp->p != '"') {
        char c = *tp->p++;
        if (c == '\\' && tp->p < tp->end) {
            char e = *tp->p++;
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == 'x' && tp->end - tp->p >= 2) {   /* test-only: \xHH is a raw byte */
                char hex[3] = { tp->p[0], tp->p[1], 0 };
                c = (char)strtol(hex, NULL, 16);
                tp->p += 2;
            } else c = e;
        }
        buf[n++] = c;
    }
    if (tp->p >= tp->end) { free(buf); return -1; }
    tp->p++;
    buf[n] = 0;
    *out = buf;
    *outn = n;
    return 0;
}

static int tp_value(tparse *tp, tv *v)
{
    memset(v, 0, sizeof *v);
    tp_ws(tp);
    if (tp->p >= tp->end) return -1;
    char c = *tp->p;
    if (c == '{' || c == '[') {
        if (++tp->depth > 64) return -1;
        int obj = c == '{';
        v->t = MODEL_T_TABLE;
        tp->p++;
        long cap = 0;
        for (;;) {
            tp_ws(tp);
            if (tp->p < tp->end && *tp->p == (obj ? '}' : ']')) { tp->p++; break; }
            if (v->nkids > 0) {
                if (tp->p >= tp->end || *tp->p != ',') return -1;
                tp->p++;
                tp_ws(tp);
            }
            if (v->nkids == cap) {
                cap = cap ? cap * 2 : 4;
                v->kids = realloc(v->kids, (size_t)cap * sizeof *v->kids);
                if (obj) {
                    v->keys = realloc(v->keys, (size_t)cap * sizeof *v->keys);
                    v->keylens = realloc(v->keylens, (size_t)cap * sizeof *v->keylens);
                }
            }
            if (obj) {
                if (tp_string(tp, &v->keys[v->nkids], &v->keylens[v->nkids]) != 0) return -1;
                tp_ws(tp);
                if (tp->p >= tp->end || *tp->p != ':') { free(v->keys[v->nkids]); return -1; }
                tp->p++;
            }
            if (tp_value(tp, &v->kids[v->nkids]) != 0) {
                if (obj) free(v->keys[v->nkids]);
                tv_free(&v->kids[v->nkids]);
                return -1;
            }
            v->nkids++;
        }
        if (!obj) { free(v->keys); v->keys = NULL; }
        tp->depth--;
        return 0;
    }
    if (c == '"') {
        v->t = MODEL_T_STRING;
        return tp_string(tp, &v->s, &v->sn);
    }
    if (tp->end - tp->p >= 4 && !memcmp(tp->p, "true", 4)) { v->t = MODEL_T_BOOLEAN; v->b = 1; tp->p += 4; return 0; }
    if (tp->end - tp->p >= 5 && !memcmp(tp->p, "false", 5)) { v->t = MODEL_T_BOOLEAN; tp->p += 5; return 0; }
    if (tp->end - tp->p >= 4 && !memcmp(tp->p, "null", 4)) { v->t = MODEL_T_NULL; tp->p += 4; return 0; }
    char num[64];
    size_t k = 0;
    while (tp->p < tp->end && k < sizeof num - 1 && strchr("+-.0123456789eE", *tp->p) && *tp->p) num[k++] = *tp->p++;
    if (k == 0) return -1;
    num[k] = 0;
    v->t = MODEL_T_NUMBER;
    v->n = strtod(num, NULL);
    return 0;
}

/* Parses JSON text into v; 0 or -1 (v is then freed). */
static int tv_parse(const char *s, size_t n, tv *v)
{
    tparse tp = { s, s + n, 0 };
    if (tp_value(&tp, v) != 0) { tv_free(v); memset(v, 0, sizeof *v); return -1; }
    return 0;
}

/* ---- the io ---- */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static tv ABSENT_TV = { .t = MODEL_T_ABSENT };

typedef struct tio {
    tv *in[256];
    int nin;
    sbuf out[256];
    int nout_items[256];     /* items written so far in each open container */
    int nout;
    sbuf errors;
    const char **defaults;   /* default_ref → JSON text */
} tio;

static model_type t_type(void *ud) { tio *io = ud; return io->in[io->nin - 1]->t; }
static int t_boolean(void *ud) { tio *io = ud; return io->in[io->nin - 1]->b; }
static double t_number(void *ud) { tio *io = ud; return io->in[io->nin - 1]->n; }
static const char *t_string(void *ud, size_t *n) { tio *io = ud; *n = io->in[io->nin - 1]->sn; return io->in[io->nin - 1]->s; }
static long t_seq_len(void *ud)
{
    tv *v = ((tio *)ud)->in[((tio *)ud)->nin - 1];
    return v->keys ? (v->nkids ? -1 : 0) : v->nkids;
}
static void t_push_index(void *ud, long i)
{
    tio *io = ud;
    tv *v = io->in[io->nin - 1];
    io->in[io->nin] = i >= 1 && i <= v->nkids ? &v->kids[i - 1] : &ABSENT_TV;
    io->nin++;
}
static void t_push_field(void *ud, const char *name, size_t len)
{
    tio *io = ud;
    tv *v = io->in[io->nin - 1], *hit = &ABSENT_TV;
    for (long i = 0; v->keys && i < v->nkids; i++)   /* the last of duplicate keys wins, as in cjson */
        if (v->keylens[i] == len && !memcmp(v->keys[i], name, len)) hit = &v->kids[i];
    io->in[io->nin++] = hit;
}
static void t_pop(void *ud) { ((tio *)ud)->nin--; }
static void t_open(tio *io, const char *s) { memset(&io->out[io->nout], 0, sizeof(sbuf)); io->nout_items[io->nout] = 0; sb_add(&io->out[io->nout++], s, strlen(s)); }
static void t_new_object(void *ud, int n) { t_open(ud, "{"); }
static void t_new_list(void *ud, long n) { t_open(ud, "["); }
static void t_close_into(tio *io, const char *key, size_t keylen)
{
    sbuf v = io->out[--io->nout];
    sbuf *parent = &io->out[io->nout - 1];
    if (io->nout_items[io->nout - 1]++ > 0) sb_add(parent, ",", 1);
    if (key) { sb_add(parent, "\"", 1); sb_add(parent, key, keylen); sb_add(parent, "\":", 2); }
    sb_add(parent, v.p, v.n);
    free(v.p);
}
static void t_finish_top(tio *io)
{
    sbuf *b = &io->out[io->nout - 1];
    if (b->p[0] == '{' ) sb_add(b, "}", 1);
    else if (b->p[0] == '[') sb_add(b, "]", 1);
}
static void t_set_field(void *ud, const char *name, size_t len)
{
    tio *io = ud;
    /* a container value is complete when it is set */
    sbuf *b = &io->out[io->nout - 1];
    if (b->p && (b->p[0] == '{' || b->p[0] == '[') && io->nout_items[io->nout - 1] >= 0) {
        t_finish_top(io);
        io->nout_items[io->nout - 1] = -1;
    }
    t_close_into(io, name, len);
}
static void t_set_index(void *ud, long i)
{
    tio *io = ud;
    sbuf *b = &io->out[io->nout - 1];
    if (b->p && (b->p[0] == '{' || b->p[0] == '[') && io->nout_items[io->nout - 1] >= 0) {
        t_finish_top(io);
        io->nout_items[io->nout - 1] = -1;
    }
    t_close_into(io, NULL, 0);
}
static void t_scalar(tio *io, const char *s, size_t n)
{
    memset(&io->out[io->nout], 0, sizeof(sbuf));
    io->nout_items[io->nout] = -1;   /* not a container */
    sb_add(&io->out[io->nout++], s, n);
}
static void t_put_number(void *ud, double v)
{
    char num[40];
    int n = snprintf(num, sizeof num, "%.17g", v);
    t_scalar(ud, num, (size_t)n);
}
static void t_put_boolean(void *ud, int v) { t_scalar(ud, v ? "true" : "false", v ? 4 : 5); }
static void t_put_copy(void *ud)
{
    tio *io = ud;
    tv *v = io->in[io->nin - 1];
    if (v->t == MODEL_T_STRING) {
        sbuf b = { 0 };
        sb_add(&b, "\"", 1);
        sb_add(&b, v->s, v->sn);
        sb_add(&b, "\"", 1);
        t_scalar(io, b.p, b.n);
        free(b.p);
    } else if (v->t == MODEL_T_NUMBER) t_put_number(ud, v->n);
    else if (v->t == MODEL_T_BOOLEAN) t_put_boolean(ud, v->b);
    else t_scalar(io, "null", 4);
}
static void t_put_default(void *ud, long ref)
{
    tio *io = ud;
    const char *s = io->defaults ? io->defaults[ref] : "null";
    t_scalar(io, s, strlen(s));
}
static void t_error(void *ud, const char *path, const char *msg)
{
    tio *io = ud;
    sb_add(&io->errors, path, strlen(path));
    sb_add(&io->errors, ": ", 2);
    sb_add(&io->errors, msg, strlen(msg));
    sb_add(&io->errors, "\n", 1);
}

static model_io tio_ops(tio *io, int coerce)
{
    model_io ops = {
        .ud = io, .coerce = coerce, .type = t_type, .boolean = t_boolean, .number = t_number,
        .string = t_string, .seq_len = t_seq_len, .push_index = t_push_index,
        .push_field = t_push_field, .pop = t_pop, .new_object = t_new_object,
        .new_list = t_new_list, .set_field = t_set_field, .set_index = t_set_index,
        .put_copy = t_put_copy, .put_number = t_put_number, .put_boolean = t_put_boolean,
        .put_default = t_put_default, .error = t_error,
    };
    return ops;
}

/* Validates JSON text against m. Returns the cleaned JSON (malloc'd) or NULL
 * with *errors (malloc'd, "path: msg\n" lines) set; bad JSON → NULL, *errors NULL. */
static char *tio_validate(const model *m, const char *json, int coerce, const char **defaults, char **errors)
{
    tv root;
    *errors = NULL;
    if (tv_parse(json, strlen(json), &root) != 0) return NULL;
    tio *io = calloc(1, sizeof *io);
    io->defaults = defaults;
    io->in[io->nin++] = &root;
    model_io ops = tio_ops(io, coerce);
    int n = model_validate(m, &ops);
    char *out = NULL;
    if (n == 0) {
        t_finish_top(io);
        out = io->out[0].p;
        io->out[0].p = NULL;
    } else {
        *errors = io->errors.p ? io->errors.p : strdup("");
        io->errors.p = NULL;
    }
    for (int i = 0; i < io->nout; i++) free(io->out[i].p);
    free(io->errors.p);
    free(io);
    tv_free(&root);
    return out;
}

#endif
