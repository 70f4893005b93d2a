/* multipart/form-data parsing (host/proto/multipart.c): boundaries, quoted names,
 * files, and the malformed bodies a client can send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

typedef struct seen {
    int n;
    char names[8][64], filenames[8][64], types[8][64], bodies[8][128];
    int has_file[8];
} seen;

static int collect(void *ud, const multipart_part *p)
{
    seen *s = ud;
    if (s->n >= 8) return 1;
    snprintf(s->names[s->n], 64, "%.*s", (int)p->name.n, p->name.p);
    s->has_file[s->n] = p->filename.p != NULL;
    if (p->filename.p) snprintf(s->filenames[s->n], 64, "%.*s", (int)p->filename.n, p->filename.p);
    if (p->content_type.p) snprintf(s->types[s->n], 64, "%.*s", (int)p->content_type.n, p->content_type.p);
    snprintf(s->bodies[s->n], 128, "%.*s", (int)p->body.n, p->body.p);
    s->n++;
    return 0;
}

static int parse(const char *body, const char *boundary, seen *s, const char **err)
{
    memset(s, 0, sizeof *s);
    *err = NULL;
    return multipart_parse(body, strlen(body), slice_make(boundary, strlen(boundary)), collect, s, err);
}

static void test_boundary_header(void **state)
{
    slice b;
    const char *ct = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk";
    assert_int_equal(multipart_boundary(ct, strlen(ct), &b), 0);
    assert_int_equal(b.n, 30);
    assert_memory_equal(b.p, "----WebKitFormBoundary7MA4YWxk", 30);
    ct = "Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b:c\"";
    assert_int_equal(multipart_boundary(ct, strlen(ct), &b), 0);
    assert_int_equal(b.n, 5);
    assert_memory_equal(b.p, "a b:c", 5);
    const char *bad[] = { "multipart/form-data", "multipart/form-data; boundary=", "text/plain; boundary=x",
                          "multipart/form-data; boundary=\"unterminated",
                          "multipart/form-data; boundary=01234567890123456789012345678901234567890123456789012345678901234567890",
                          "multipart/form-data; boundary=a\x01" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (multipart_boundary(bad[i], strlen(bad[i]), &b) == 0) fail_msg("accepted %s", bad[i]);
}

static void test_fields_and_files(void **state)
{
    seen s;
    const char *err;
    const char *body =
        "preamble\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"title\"\r\n"
        "\r\n"
        "hello\r\nworld\r\n"
        "--XyZ\r\n"
        "content-disposition: form-data; name=\"a\\\"b\"; filename=\"c:\\\\x\\\\f.txt\"\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "file --XyZ body\r\n"
        "--XyZ  \r\n"
        "Content-Disposition: form-data; name=empty\r\n"
        "\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"u\"; filename*=UTF-8''na%C3%AFve.txt; filename=\"plain.txt\"\r\n"
        "\r\n"
        "x\r\n"
        "--XyZ--\r\n"
        "epilogue";
    assert_int_equal(parse(body, "XyZ", &s, &err), 4);
    assert_string_equal(s.names[0], "title");
    assert_string_equal(s.bodies[0], "hello\r\nworld");
    assert_false(s.has_file[0]);
    assert_string_equal(s.names[1], "a\"b");
    assert_true(s.has_file[1]);
    assert_string_equal(s.filenames[1], "c:\\x\\f.txt");
    assert_string_equal(s.types[1], "text/plain");
    assert_string_equal(s.bodies[1], "file --XyZ body");
    assert_string_equal(s.names[2], "empty");
    assert_string_equal(s.bodies[2], "");
    assert_string_equal(s.filenames[3], "na\xc3\xafve.txt");
}

static void test_empty_file_and_no_name(void **state)
{
    seen s;
    const char *err;
    const char *body =
        "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nno name: skipped\r\n"
        "--b\r\n\r\nno headers: skipped\r\n"
        "--b--";
    assert_int_equal(parse(body, "b", &s, &err), 1);
    assert_true(s.has_file[0]);
    assert_string_equal(s.filenames[0], "");
    assert_string_equal(s.bodies[0], "");
}

static void test_malformed(void **state)
{
    seen s;
    const char *err;
    struct { const char *body, *why; } cases[] = {
        { "", "without its boundary" },
        { "no boundary here", "without its boundary" },
        { "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue", "closing boundary" },
        { "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--b", "closing boundary" },
        { "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--bX\r\n", "closing boundary" },
        { "--b\r\nContent-Disposition: form-data; name=\"a\"", "end to its headers" },
        { "--b\r\nno colon line\r\n\r\nx\r\n--b--", "malformed" },
        { "--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--", "malformed" },
        { "--b\r\nContent-Disposition: form-data; name=\"unterminated\r\n\r\nx\r\n--b--", "malformed" },
        { "--b junk\r\n", "closing boundary" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (parse(cases[i].body, "b", &s, &err) != -1) fail_msg("case %zu accepted", i);
        if (!err || !strstr(err, cases[i].why)) fail_msg("case %zu: '%s', wanted '%s'", i, err, cases[i].why);
    }
}

static void test_limits(void **state)
{
    const char *err;
    /* a name longer than MULTIPART_MAX_NAME is refused, not truncated */
    size_t n = MULTIPART_MAX_NAME + 200;
    char *body = malloc(n + 200);
    int k = sprintf(body, "--b\r\nContent-Disposition: form-data; name=\"");
    memset(body + k, 'n', MULTIPART_MAX_NAME + 1);
    k += MULTIPART_MAX_NAME + 1;
    k += sprintf(body + k, "\"\r\n\r\nv\r\n--b--");
    assert_int_equal(multipart_parse(body, (size_t)k, slice_make("b", 1), NULL, NULL, &err), -1);
    free(body);
    /* too many parts */
    size_t part = strlen("--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n");
    size_t total = part * (MULTIPART_MAX_PARTS + 2) + 8;
    body = malloc(total);
    size_t used = 0;
    for (int i = 0; i < MULTIPART_MAX_PARTS + 1; i++) {
        memcpy(body + used, "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n", part);
        used += part;
    }
    memcpy(body + used, "--b--", 5);
    used += 5;
    /* the first delimiter opens the body; every later one follows the CRLF of the part before */
    assert_int_equal(multipart_parse(body, used, slice_make("b", 1), NULL, NULL, &err), -1);
    assert_non_null(strstr(err, "too many"));
    free(body);
}

static void test_stop_early(void **state)
{
    const char *err;
    const char *body = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                       "--b\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n--b--";
    seen s;
    memset(&s, 0, sizeof s);
    s.n = 7;   /* collect stops once 8 are seen */
    assert_int_equal(multipart_parse(body, strlen(body), slice_make("b", 1), collect, &s, &err), 2);
    assert_int_equal(s.n, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_header),
        cmocka_unit_test(test_fields_and_files),
        cmocka_unit_test(test_empty_file_and_no_name),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_stop_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
