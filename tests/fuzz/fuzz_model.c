/* libFuzzer target for the model validator and its format checks, with no Lua:
 * the C schema is walked over plain C values (tests/unit/model_testio.h).
 * Input: the first byte picks the form-coercion mode, the rest is JSON-ish text
 * validated against a schema with every field kind; the raw bytes also go
 * through each format check, the UTF-8 counter and the JSON duplicate-key scan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/model_testio.h"

static model *schema;
static model *inner;
static const char *DEFAULTS[] = { "false", "\"d\"" };

static model_field *fld(model_kind k, int has_min, double min, int has_max, double max)
{
    model_field *f = model_field_new(k);
    model_field_bounds(f, has_min, min, has_max, max);
    return f;
}

static void build(void)
{
    char err[200];
    inner = model_new();
    model_field *city = fld(MODEL_STRING, 1, 1, 1, 20);
    model_field_flags(city, 1, 0);
    model_add(inner, "city", 4, city, err, sizeof err);
    model_field *zip = fld(MODEL_STRING, 0, 0, 0, 0);
    model_field_pattern(zip, "^(a|b+)+[0-9]{2,5}$", 19, err, sizeof err);
    model_add(inner, "zip", 3, zip, err, sizeof err);

    schema = model_new();
    model_field *s = fld(MODEL_STRING, 1, 2, 1, 10);
    model_field_flags(s, 1, 0);
    model_add(schema, "s", 1, s, err, sizeof err);
    model_field *c = fld(MODEL_STRING, 0, 0, 0, 0);
    model_field_choice(c, "red", 3);
    model_field_choice(c, "green", 5);
    model_add(schema, "c", 1, c, err, sizeof err);
    model_add(schema, "i", 1, fld(MODEL_INTEGER, 1, -5, 1, 5), err, sizeof err);
    model_add(schema, "n", 1, fld(MODEL_NUMBER, 1, -1.5, 1, 1e9), err, sizeof err);
    model_field *b = fld(MODEL_BOOLEAN, 0, 0, 0, 0);
    model_field_default(b, 0);
    model_add(schema, "b", 1, b, err, sizeof err);
    model_add(schema, "e", 1, fld(MODEL_EMAIL, 0, 0, 0, 0), err, sizeof err);
    model_add(schema, "u", 1, fld(MODEL_URL, 0, 0, 0, 0), err, sizeof err);
    model_add(schema, "id", 2, fld(MODEL_UUID, 0, 0, 0, 0), err, sizeof err);
    model_field *d = fld(MODEL_DATETIME, 0, 0, 0, 0);
    model_field_default(d, 1);
    model_add(schema, "d", 1, d, err, sizeof err);
    model_field *o = fld(MODEL_OBJECT, 0, 0, 0, 0);
    model_field_object(o, inner);
    model_field *lo = fld(MODEL_LIST, 0, 0, 1, 4);
    model_field_item(lo, o);
    model_field *ll = fld(MODEL_LIST, 0, 0, 0, 0);
    model_field_item(ll, lo);
    model_add(schema, "l", 1, ll, err, sizeof err);
    model_field *o2 = fld(MODEL_OBJECT, 0, 0, 0, 0);
    model_field_object(o2, inner);
    model_add(schema, "o", 1, o2, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema) build();
    if (size == 0) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char *copy = malloc(n ? n : 1);   /* exactly n bytes: overreads are caught */
    if (n) memcpy(copy, s, n);
    model_check_email(copy, n);
    model_check_url(copy, n);
    model_check_uuid(copy, n);
    model_check_datetime(copy, n);
    long chars = model_utf8_length(copy, n);
    if (chars > (long)n) abort();
    char err[160];
    model_json_check(copy, n, 16, err, sizeof err);

    tv root;
    if (tv_parse(copy, n, &root) == 0) {
        tio *io = calloc(1, sizeof *io);
        io->defaults = DEFAULTS;
        io->in[io->nin++] = &root;
        model_io ops = tio_ops(io, data[0] & 1);
        int errors = model_validate(schema, &ops);
        if (errors < 0 || errors > MODEL_MAX_ERRORS) abort();
        if (errors == 0 && io->nout != 1) abort();   /* exactly the cleaned value */
        if (io->nin != 1) abort();                     /* the walk came back up */
        for (int i = 0; i < io->nout; i++) free(io->out[i].p);
        free(io->errors.p);
        free(io);
        tv_free(&root);
    }
    free(copy);
    return 0;
}
