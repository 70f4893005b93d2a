/* The model validator (host/proto/model.c) through a C value interface: every field
 * kind and bound, valid, invalid and edge values, and the format checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "model_testio.h"

static const char *DEFAULTS[] = { "false", "\"s3\"", "[]" };

static model_field *field(model_kind k, int has_min, double min, int has_max, double max)
{
    model_field *f = model_field_new(k);
    model_field_bounds(f, has_min, min, has_max, max);
    return f;
}

static void add(model *m, const char *name, model_field *f)
{
    char err[200];
    assert_int_equal(model_add(m, name, strlen(name), f, err, sizeof err), 0);
}

static model *address_model(void)
{
    model *m = model_new();
    model_field *city = field(MODEL_STRING, 0, 0, 1, 50);
    model_field_flags(city, 1, 0);
    add(m, "city", city);
    model_field *zip = field(MODEL_STRING, 0, 0, 0, 0);
    char err[200];
    assert_int_equal(model_field_pattern(zip, "^[0-9]{5}$", 10, err, sizeof err), 0);
    add(m, "zip", zip);
    return m;
}

/* title{required,1..200} done{default false} order{int 0..1000} owner{email,private}
 * tags{list of string<=20, <=10} n{number -1.5..1.5} color{choices} url uuid at
 * address{object} secret{default "s3"} */
static model *big_model(model *address)
{
    model *m = model_new();
    model_field *title = field(MODEL_STRING, 1, 1, 1, 200);
    model_field_flags(title, 1, 0);
    add(m, "title", title);
    model_field *done = field(MODEL_BOOLEAN, 0, 0, 0, 0);
    model_field_default(done, 0);
    add(m, "done", done);
    add(m, "order", field(MODEL_INTEGER, 1, 0, 1, 1000));
    model_field *owner = field(MODEL_EMAIL, 0, 0, 0, 0);
    model_field_flags(owner, 0, 1);
    add(m, "owner", owner);
    model_field *tags = field(MODEL_LIST, 0, 0, 1, 10);
    model_field_item(tags, field(MODEL_STRING, 0, 0, 1, 20));
    add(m, "tags", tags);
    add(m, "n", field(MODEL_NUMBER, 1, -1.5, 1, 1.5));
    model_field *color = field(MODEL_STRING, 0, 0, 0, 0);
    model_field_choice(color, "red", 3);
    model_field_choice(color, "green", 5);
    add(m, "color", color);
    add(m, "url", field(MODEL_URL, 0, 0, 0, 0));
    add(m, "id", field(MODEL_UUID, 0, 0, 0, 0));
    add(m, "at", field(MODEL_DATETIME, 0, 0, 0, 0));
    model_field *addr = field(MODEL_OBJECT, 0, 0, 0, 0);
    model_field_object(addr, address);
    add(m, "address", addr);
    model_field *secret = field(MODEL_STRING, 0, 0, 0, 0);
    model_field_default(secret, 1);
    add(m, "secret", secret);
    return m;
}

typedef struct fixture { model *address, *m; } fixture;

static int setup(void **state)
{
    fixture *fx = malloc(sizeof *fx);
    fx->address = address_model();
    fx->m = big_model(fx->address);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    model_free(fx->m);
    model_free(fx->address);
    free(fx);
    return 0;
}

static void ok_as(const model *m, int coerce, const char *json, const char *want)
{
    char *errors;
    char *out = tio_validate(m, json, coerce, DEFAULTS, &errors);
    if (!out) fail_msg("%s: unexpected errors:\n%s", json, errors ? errors : "(bad test JSON)");
    if (want) assert_string_equal(out, want);
    free(out);
}

static void ok(const model *m, const char *json) { ok_as(m, 0, json, NULL); }

/* Fails unless validation fails with exactly `line` among the errors. */
static void bad_as(const model *m, int coerce, const char *json, const char *line)
{
    char *errors;
    char *out = tio_validate(m, json, coerce, DEFAULTS, &errors);
    if (out) fail_msg("%s: accepted as %s, wanted '%s'", json, out, line);
    if (!errors) fail_msg("%s: the test's JSON does not parse", json);
    char want[300];
    snprintf(want, sizeof want, "%s\n", line);
    if (!strstr(errors, want)) fail_msg("%s: wanted '%s', got:\n%s", json, line, errors);
    free(errors);
}

static void bad(const model *m, const char *json, const char *line) { bad_as(m, 0, json, line); }

#define M (((fixture *)*state)->m)

static void test_cleaned_value(void **state)
{
    ok_as(M, 0, "{\"title\":\"x\",\"junk\":1,\"tags\":[\"a\",\"b\"]}",
          "{\"title\":\"x\",\"done\":false,\"tags\":[\"a\",\"b\"],\"secret\":\"s3\"}");
    ok_as(M, 0, "{\"title\":\"x\",\"done\":true,\"owner\":\"a@b.c\",\"address\":{\"city\":\"P\",\"x\":1}}",
          "{\"title\":\"x\",\"done\":true,\"owner\":\"a@b.c\",\"address\":{\"city\":\"P\"},\"secret\":\"s3\"}");
    /* null is absent: the default fills it */
    ok_as(M, 0, "{\"title\":\"x\",\"done\":null,\"order\":null}",
          "{\"title\":\"x\",\"done\":false,\"secret\":\"s3\"}");
}

static void test_required_and_root(void **state)
{
    bad(M, "{}", "title: is required");
    bad(M, "{\"title\":null}", "title: is required");
    bad(M, "[1]", ": must be an object");
    bad(M, "\"x\"", ": must be an object");
    bad(M, "3", ": must be an object");
    ok(M, "{\"title\":\"x\",\"address\":{\"city\":\"c\"}}");
    bad(M, "{\"title\":\"x\",\"address\":{}}", "address.city: is required");
}

static void test_string_bounds(void **state)
{
    bad(M, "{\"title\":\"\"}", "title: must have at least 1 character");
    ok(M, "{\"title\":\"a\"}");
    char json[400];
    snprintf(json, sizeof json, "{\"title\":\"%0200d\"}", 0);
    ok(M, json);
    snprintf(json, sizeof json, "{\"title\":\"%0201d\"}", 0);
    bad(M, json, "title: must have at most 200 characters");
    /* characters, not bytes: 20 × "é" (40 bytes) fits max 20 */
    char tags[200] = "{\"title\":\"t\",\"tags\":[\"";
    for (int i = 0; i < 20; i++) strcat(tags, "\xc3\xa9");
    strcat(tags, "\"]}");
    ok(M, tags);
    bad(M, "{\"title\":\"t\",\"tags\":[\"123456789012345678901\"]}", "tags.1: must have at most 20 characters");
    bad(M, "{\"title\":5}", "title: must be a string");
    bad(M, "{\"title\":true}", "title: must be a string");
    bad(M, "{\"title\":[\"x\"]}", "title: must be a string");
}

static void test_utf8(void **state)
{
    bad(M, "{\"title\":\"\\xff\"}", "title: is not valid UTF-8");
    bad(M, "{\"title\":\"\\xc0\\x80\"}", "title: is not valid UTF-8");         /* overlong NUL */
    bad(M, "{\"title\":\"\\xed\\xa0\\x80\"}", "title: is not valid UTF-8");    /* surrogate */
    bad(M, "{\"title\":\"\\xf4\\x90\\x80\\x80\"}", "title: is not valid UTF-8"); /* > U+10FFFF */
    bad(M, "{\"title\":\"ab\\xe2\\x82\"}", "title: is not valid UTF-8");       /* truncated */
    ok(M, "{\"title\":\"\\xf0\\x9f\\x98\\x80\"}");                               /* U+1F600 */
    assert_int_equal(model_utf8_length("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), 4);
    assert_int_equal(model_utf8_length("", 0), 0);
}

static void test_choices_and_pattern(void **state)
{
    ok(M, "{\"title\":\"t\",\"color\":\"red\"}");
    ok(M, "{\"title\":\"t\",\"color\":\"green\"}");
    bad(M, "{\"title\":\"t\",\"color\":\"Red\"}", "color: must be one of: red, green");
    bad(M, "{\"title\":\"t\",\"color\":\"\"}", "color: must be one of: red, green");
    ok(M, "{\"title\":\"t\",\"address\":{\"city\":\"c\",\"zip\":\"12345\"}}");
    bad(M, "{\"title\":\"t\",\"address\":{\"city\":\"c\",\"zip\":\"1234\"}}", "address.zip: does not match the pattern");
    bad(M, "{\"title\":\"t\",\"address\":{\"city\":\"c\",\"zip\":\"123456\"}}", "address.zip: does not match the pattern");
    char err[300];
    model_field *f = model_field_new(MODEL_STRING);
    assert_int_equal(model_field_pattern(f, "(unclosed", 9, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad pattern"));
    /* catastrophic backtracking stops at the match limit instead of hanging */
    assert_int_equal(model_field_pattern(f, "^(a+)+$", 7, err, sizeof err), 0);
    model *m = model_new();
    add(m, "s", f);
    char json[200] = "{\"s\":\"";
    for (int i = 0; i < 60; i++) strcat(json, "a");
    strcat(json, "!\"}");
    char *errors;
    char *out = tio_validate(m, json, 0, NULL, &errors);
    assert_null(out);
    assert_non_null(errors);
    free(errors);
    model_free(m);
}

static void test_integer(void **state)
{
    ok_as(M, 0, "{\"title\":\"t\",\"order\":0}", "{\"title\":\"t\",\"done\":false,\"order\":0,\"secret\":\"s3\"}");
    ok(M, "{\"title\":\"t\",\"order\":1000}");
    ok(M, "{\"title\":\"t\",\"order\":1e3}");
    bad(M, "{\"title\":\"t\",\"order\":-1}", "order: must be at least 0");
    bad(M, "{\"title\":\"t\",\"order\":1001}", "order: must be at most 1000");
    bad(M, "{\"title\":\"t\",\"order\":1.5}", "order: must be an integer");
    bad(M, "{\"title\":\"t\",\"order\":\"3\"}", "order: must be an integer");
    bad(M, "{\"title\":\"t\",\"order\":1e400}", "order: must be a finite number");
    bad(M, "{\"title\":\"t\",\"order\":true}", "order: must be an integer");
    model *m = model_new();
    add(m, "i", field(MODEL_INTEGER, 0, 0, 0, 0));
    ok(m, "{\"i\":9007199254740992}");
    ok(m, "{\"i\":-9007199254740992}");
    bad(m, "{\"i\":9007199254740994}", "i: must be an integer between -2^53 and 2^53");
    bad(m, "{\"i\":123456789012345678901234567890}", "i: must be an integer between -2^53 and 2^53");
    model_free(m);
}

static void test_number(void **state)
{
    ok(M, "{\"title\":\"t\",\"n\":-1.5}");
    ok(M, "{\"title\":\"t\",\"n\":1.5}");
    ok(M, "{\"title\":\"t\",\"n\":0}");
    bad(M, "{\"title\":\"t\",\"n\":1.5000001}", "n: must be at most 1.5");
    bad(M, "{\"title\":\"t\",\"n\":-1.6}", "n: must be at least -1.5");
    bad(M, "{\"title\":\"t\",\"n\":\"1\"}", "n: must be a number");
    bad(M, "{\"title\":\"t\",\"n\":-1e999}", "n: must be a finite number");
}

static void test_boolean(void **state)
{
    ok(M, "{\"title\":\"t\",\"done\":false}");
    bad(M, "{\"title\":\"t\",\"done\":\"true\"}", "done: must be true or false");
    bad(M, "{\"title\":\"t\",\"done\":1}", "done: must be true or false");
}

static void test_form_coercion(void **state)
{
    ok_as(M, 1, "{\"title\":\"t\",\"order\":\"42\",\"done\":\"on\",\"n\":\"-0.5\",\"at\":\"\"}",
          "{\"title\":\"t\",\"done\":true,\"order\":42,\"n\":-0.5,\"secret\":\"s3\"}");
    ok_as(M, 1, "{\"title\":\"t\",\"done\":\"false\",\"order\":\"\"}",
          "{\"title\":\"t\",\"done\":false,\"secret\":\"s3\"}");
    bad_as(M, 1, "{\"title\":\"t\",\"order\":\"4x\"}", "order: must be an integer");
    bad_as(M, 1, "{\"title\":\"t\",\"order\":\"0x10\"}", "order: must be an integer");
    bad_as(M, 1, "{\"title\":\"t\",\"order\":\"01\"}", "order: must be an integer");
    bad_as(M, 1, "{\"title\":\"t\",\"done\":\"maybe\"}", "done: must be true or false");
    bad_as(M, 1, "{\"title\":\"\"}", "title: must have at least 1 character");   /* strings stay strings */
}

static void test_list(void **state)
{
    ok(M, "{\"title\":\"t\",\"tags\":[]}");
    ok(M, "{\"title\":\"t\",\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\"]}");
    bad(M, "{\"title\":\"t\",\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\"]}",
        "tags: must have at most 10 items");
    bad(M, "{\"title\":\"t\",\"tags\":[\"a\",\"b\",3]}", "tags.3: must be a string");
    bad(M, "{\"title\":\"t\",\"tags\":{\"a\":1}}", "tags: must be a list");
    bad(M, "{\"title\":\"t\",\"tags\":\"a\"}", "tags: must be a list");
    model *m = model_new();
    model_field *pts = field(MODEL_LIST, 1, 1, 1, 3);
    model_field_item(pts, field(MODEL_INTEGER, 1, 0, 0, 0));
    add(m, "p", pts);
    bad(m, "{\"p\":[]}", "p: must have at least 1 item");
    ok_as(m, 0, "{\"p\":[0,1,2]}", "{\"p\":[0,1,2]}");
    bad(m, "{\"p\":[0,-1]}", "p.2: must be at least 0");
    model_free(m);
}

static void test_nested_lists_of_objects(void **state)
{
    fixture *fx = *state;
    model *m = model_new();
    model_field *obj = field(MODEL_OBJECT, 0, 0, 0, 0);
    model_field_object(obj, fx->address);
    model_field *inner = field(MODEL_LIST, 0, 0, 0, 0);
    model_field_item(inner, obj);
    model_field *outer = field(MODEL_LIST, 0, 0, 0, 0);
    model_field_item(outer, inner);
    add(m, "grid", outer);
    ok_as(m, 0, "{\"grid\":[[{\"city\":\"a\"}],[]]}", "{\"grid\":[[{\"city\":\"a\"}],[]]}");
    bad(m, "{\"grid\":[[{\"city\":\"a\"}],[{\"zip\":\"1\"}]]}", "grid.2.1.city: is required");
    bad(m, "{\"grid\":[[{\"city\":\"a\"}],[{\"zip\":\"1\"}]]}", "grid.2.1.zip: does not match the pattern");
    bad(m, "{\"grid\":[[[1]]]}", "grid.1.1: must be an object");
    model_free(m);
}

static void test_error_cap(void **state)
{
    model *m = model_new();
    model_field *l = field(MODEL_LIST, 0, 0, 0, 0);
    model_field_item(l, field(MODEL_INTEGER, 0, 0, 0, 0));
    add(m, "l", l);
    char *json = malloc(5000), *errors;
    strcpy(json, "{\"l\":[");
    for (int i = 0; i < 1000; i++) strcat(json, i ? ",\"x\"" : "\"x\"");
    strcat(json, "]}");
    assert_null(tio_validate(m, json, 0, NULL, &errors));
    int lines = 0;
    for (char *p = errors; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, MODEL_MAX_ERRORS);
    free(errors);
    free(json);
    model_free(m);
}

static void test_schema_building(void **state)
{
    char err[200];
    model *m = model_new();
    add(m, "a", field(MODEL_STRING, 0, 0, 0, 0));
    assert_int_equal(model_add(m, "a", 1, field(MODEL_STRING, 0, 0, 0, 0), err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    model_field *f = field(MODEL_STRING, 0, 0, 0, 0);
    for (int i = 0; i < MODEL_MAX_DEPTH + 1; i++) {
        model_field *l = field(MODEL_LIST, 0, 0, 0, 0);
        model_field_item(l, f);
        f = l;
    }
    assert_int_equal(model_add(m, "deep", 4, f, err, sizeof err), -1);
    assert_int_equal(model_nfields(m), 1);
    model_free(m);
}

static void test_email(void **state)
{
    static const char *good[] = {
        "a@b.c", "first.last@example.com", "x+tag@sub.example.co.uk", "!#$%&'*+-/=?^_`{|}~@ex.org",
        "\"quoted name\"@example.com", "\"a\\\"b\"@example.com", "user@localhost", "u@[192.168.0.1]",
        "u@[IPv6:2001:db8::1]", "a@xn--bcher-kva.example",
    };
    static const char *badv[] = {
        "", "a", "@b.c", "a@", "a@@b.c", ".a@b.c", "a.@b.c", "a..b@c.d", "a b@c.d", "a@b..c", "a@-b.c",
        "a@b-.c", "a@b_c.d", "a@[300.1.1.1]", "a@[1.2.3]", "\"unterminated@b.c", "a@b.c.", "a(comment)@b.c",
        "\xc3\xa9@b.c", "a@b.c\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!model_check_email(good[i], strlen(good[i]))) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
        if (model_check_email(badv[i], strlen(badv[i]))) fail_msg("accepted %s", badv[i]);
    char local[80];
    memset(local, 'a', 65);
    strcpy(local + 65, "@b.c");
    assert_false(model_check_email(local, strlen(local)));   /* local part > 64 */
    strcpy(local + 64, "@b.c");
    assert_true(model_check_email(local, strlen(local)));
    bad(M, "{\"title\":\"t\",\"owner\":\"nope\"}", "owner: must be an email address");
}

static void test_url(void **state)
{
    static const char *good[] = {
        "http://a", "https://example.com", "HTTPS://Example.COM:8443/a/b?x=1&y=%20#frag",
        "http://user:pw@host/", "http://[::1]/", "http://[2001:db8::7]:80", "http://1.2.3.4/p;q=1",
        "https://ex.com/a/%7Euser/", "http://h/?q=/?:@", "http://[v7.fe80:1]/",
    };
    static const char *badv[] = {
        "", "example.com", "ftp://example.com", "http:/x", "http://", "http:///path", "http://a b",
        "http://ex.com/%zz", "http://ex.com/%4", "http://[::1/", "http://[1::2::3]/", "http://h:80a/",
        "javascript:alert(1)", "http://h/\"", "http://h/<>", "http://h/\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!model_check_url(good[i], strlen(good[i]))) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
        if (model_check_url(badv[i], strlen(badv[i]))) fail_msg("accepted %s", badv[i]);
    bad(M, "{\"title\":\"t\",\"url\":\"ftp://x\"}", "url: must be an http or https URL");
}

static void test_uuid(void **state)
{
    assert_true(model_check_uuid("123e4567-e89b-12d3-a456-426614174000", 36));
    assert_true(model_check_uuid("00000000-0000-0000-0000-000000000000", 36));
    assert_true(model_check_uuid("ABCDEF01-2345-6789-ABCD-EF0123456789", 36));
    assert_false(model_check_uuid("123e4567e89b12d3a456426614174000", 32));
    assert_false(model_check_uuid("123e4567-e89b-12d3-a456-42661417400", 35));
    assert_false(model_check_uuid("123e4567-e89b-12d3-a456-42661417400g", 36));
    assert_false(model_check_uuid("{23e4567-e89b-12d3-a456-426614174000", 36));
    assert_false(model_check_uuid("123e4567-e89b_12d3-a456-426614174000", 36));
    bad(M, "{\"title\":\"t\",\"id\":\"x\"}", "id: must be a UUID");
}

static void test_datetime(void **state)
{
    static const char *good[] = {
        "2024-01-31T23:59:59Z", "2024-02-29T00:00:00z", "2000-02-29T12:00:00+01:00",
        "1999-12-31t23:59:60.123456Z", "2024-06-30T10:20:30.5-07:30", "0001-01-01T00:00:00Z",
    };
    static const char *badv[] = {
        "", "2024-01-31", "2024-01-31T23:59:59", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z", "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-01-00T00:00:00Z",
        "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z", "2024-01-01T00:00:61Z", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00+0100", "2024-01-01T00:00:00+24:00", "2024-01-01 00:00:00Z",
        "2024-1-01T00:00:00Z", "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00+01:00x",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!model_check_datetime(good[i], strlen(good[i]))) fail_msg("refused %s", good[i]);
    for (size_t i = 0; i < sizeof badv / sizeof *badv; i++)
        if (model_check_datetime(badv[i], strlen(badv[i]))) fail_msg("accepted %s", badv[i]);
    bad(M, "{\"title\":\"t\",\"at\":\"2023-02-29T00:00:00Z\"}", "at: must be an RFC 3339 date-time");
}

static void test_json_check(void **state)
{
    char err[200];
    const char *okv[] = { "{}", "[]", "{\"a\":1,\"b\":{\"a\":2}}", "[{\"a\":1},{\"a\":1}]", "\"{\\\"a\\\":1,\\\"a\\\":1}\"",
                          "{\"a\":{\"x\":1},\"b\":{\"x\":1}}", "{\"ab\":1,\"a\":1,\"b\":1}" };
    for (size_t i = 0; i < sizeof okv / sizeof *okv; i++)
        if (model_json_check(okv[i], strlen(okv[i]), 10, err, sizeof err) != 0) fail_msg("refused %s: %s", okv[i], err);
    const char *dup[] = { "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"x\":[{\"k\":1,\"b\":2,\"k\":3}]}",
                          "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", "{\"a\\\"\":1,\"a\\\"\":1}" };
    for (size_t i = 0; i < sizeof dup / sizeof *dup; i++) {
        if (model_json_check(dup[i], strlen(dup[i]), 10, err, sizeof err) == 0) fail_msg("accepted %s", dup[i]);
        assert_non_null(strstr(err, "duplicate key"));
    }
    char deep[100];
    memset(deep, '[', 11);
    memset(deep + 11, ']', 11);
    deep[22] = 0;
    assert_int_equal(model_json_check(deep, 22, 10, err, sizeof err), -1);
    assert_non_null(strstr(err, "deeper"));
    assert_int_equal(model_json_check(deep + 1, 20, 10, err, sizeof err), 0);
    /* truncated input is not this function's to refuse, and must not overrun */
    assert_int_equal(model_json_check("{\"a", 3, 10, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cleaned_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_and_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_choices_and_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boolean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_coercion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_lists_of_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_building, setup, teardown),
        cmocka_unit_test_setup_teardown(test_email, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uuid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_datetime, setup, teardown),
        cmocka_unit_test(test_json_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
