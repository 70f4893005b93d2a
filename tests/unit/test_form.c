/* form_url_decode, form_parse_urlencoded and form_parse_cookies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

/* Collects the pairs a parser reports as "name=value;" text, which makes the
 * expected results one readable string. Stops the parse after stop_after pairs
 * when that is nonzero. */
typedef struct collected {
    char text[512];
    size_t n;
    int calls, stop_after;
} collected;

static int collect(void *ud, slice name, slice value)
{
    collected *c = ud;
    int w = snprintf(c->text + c->n, sizeof c->text - c->n, "%.*s=%.*s;",
                     (int)name.n, name.p, (int)value.n, value.p);
    assert_true(w >= 0 && (size_t)w < sizeof c->text - c->n);
    assert_non_null(name.p);
    assert_non_null(value.p);
    c->n += (size_t)w;
    c->calls++;
    return c->stop_after && c->calls == c->stop_after;
}

/* Parses a urlencoded string through an exact-size scratch buffer (so ASan sees
 * any overrun) and returns the collected pairs. */
static collected urlencoded(const char *s, int *pairs)
{
    collected c = { .n = 0 };
    size_t len = strlen(s);
    char *scratch = malloc(len ? len : 1);
    *pairs = form_parse_urlencoded(s, len, scratch, collect, &c);
    free(scratch);
    return c;
}

static collected cookies(const char *s, int *pairs)
{
    collected c = { .n = 0 };
    *pairs = form_parse_cookies(s, strlen(s), collect, &c);
    return c;
}

static void decode_cases(void **state)
{
    (void)state;
    static const struct { const char *in; int plus; const char *out; size_t out_n; } cases[] = {
        { "", 1, "", 0 },
        { "plain", 1, "plain", 5 },
        { "a%20b", 1, "a b", 3 },
        { "%41%42%43", 0, "ABC", 3 },
        { "%e2%82%AC", 0, "\xe2\x82\xac", 3 },            /* either hex case */
        { "a+b", 1, "a b", 3 },
        { "a+b", 0, "a+b", 3 },                             /* paths keep '+' */
        { "%2B", 1, "+", 1 },                               /* an escaped '+' stays '+' */
        { "%00x", 1, "\0x", 2 },
        { "%", 1, "%", 1 },                                 /* bad escapes stay literal */
        { "%4", 1, "%4", 2 },
        { "%zz", 1, "%zz", 3 },
        { "%4g%41", 1, "%4gA", 4 },
        { "%%41", 1, "%A", 2 },                             /* the next '%' still decodes */
        { "100%", 1, "100%", 4 },
        { "%+1", 1, "% 1", 3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in);
        char *out = malloc(len ? len : 1);
        size_t n = form_url_decode(cases[i].in, len, out, cases[i].plus);
        if (n != cases[i].out_n || memcmp(out, cases[i].out, n) != 0)
            fail_msg("case %zu (%s): got %zu bytes \"%.*s\"", i, cases[i].in, n, (int)n, out);
        free(out);
    }
}

static void urlencoded_pairs(void **state)
{
    (void)state;
    static const struct { const char *in, *want; int pairs; } cases[] = {
        { "a=1&b=%20x&c&d=", "a=1;b= x;c=;d=;", 4 },         /* form.h's example */
        { "", "", 0 },
        { "&&&", "", 0 },                                    /* empty segments skipped */
        { "&a=1&&b=2&", "a=1;b=2;", 2 },
        { "q=hello+world&x=a%2Bb", "q=hello world;x=a+b;", 2 },
        { "na+me%3D=v%26al", "na me==v&al;", 1 },            /* escaped '=' and '&' */
        { "a=b=c", "a=b=c;", 1 },                            /* only the first '=' splits */
        { "=v", "=v;", 1 },
        { "=", "=;", 1 },
        { "k=%zz%4", "k=%zz%4;", 1 },
        { "a=1&a=2", "a=1;a=2;", 2 },                        /* repeats kept in order */
        { "x=%C3%A9", "x=\xc3\xa9;", 1 },
        { "a;b=1", "a;b=1;", 1 },                            /* ';' is not a separator */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int pairs;
        collected c = urlencoded(cases[i].in, &pairs);
        if (strcmp(c.text, cases[i].want) != 0 || pairs != cases[i].pairs ||
            c.calls != cases[i].pairs)
            fail_msg("case %zu (%s): got \"%s\" (%d pairs)", i, cases[i].in, c.text, pairs);
    }
}

/* A byte range every reported slice must fall inside. */
typedef struct span {
    const char *lo, *hi;
    int ok;
} span;

static int check_inside_span(void *ud, slice name, slice value)
{
    span *range = ud;
    if (name.p < range->lo || name.p + name.n > range->hi ||
        value.p < range->lo || value.p + value.n > range->hi)
        range->ok = 0;
    return 0;
}

static void urlencoded_slices_point_into_scratch(void **state)
{
    (void)state;
    static const char in[] = "ab=cd&e=f";
    char scratch[sizeof in - 1];
    span range = { scratch, scratch + sizeof scratch, 1 };
    assert_int_equal(form_parse_urlencoded(in, sizeof in - 1, scratch, check_inside_span,
                                           &range), 2);
    assert_true(range.ok);
    /* Pairs are laid out one after another, so earlier slices stay valid. */
    assert_memory_equal(scratch, "abcdef", 6);
}

static void urlencoded_callback_can_stop(void **state)
{
    (void)state;
    collected c = { .stop_after = 2 };
    char scratch[32];
    const char *in = "a=1&b=2&c=3";
    assert_int_equal(form_parse_urlencoded(in, strlen(in), scratch, collect, &c), 2);
    assert_string_equal(c.text, "a=1;b=2;");
}

static void urlencoded_stops_at_len(void **state)
{
    (void)state;
    collected c = { .n = 0 };
    char scratch[8];
    /* Only the first 5 bytes belong to the input; the rest must not be read. */
    assert_int_equal(form_parse_urlencoded("a=1&b=2&c=3", 5, scratch, collect, &c), 2);
    assert_string_equal(c.text, "a=1;b=;");
}

static void urlencoded_counts_without_callback(void **state)
{
    (void)state;
    char scratch[16];
    assert_int_equal(form_parse_urlencoded("a=1&&b&c=", 9, scratch, NULL, NULL), 3);
}

static void cookie_cases(void **state)
{
    (void)state;
    static const struct { const char *in, *want; int pairs; } cases[] = {
        { "a=1; b=\"x y\"; c", "a=1;b=x y;", 2 },            /* form.h's example */
        { "", "", 0 },
        { ";;; ;", "", 0 },
        { "a=1;b=2", "a=1;b=2;", 2 },
        { "  a \t=\t 1  ;\tb=2\t", "a=1;b=2;", 2 },          /* spaces and tabs trimmed */
        { "a=\"\"", "a=;", 1 },                              /* empty quoted value */
        { "a=\"", "a=\";", 1 },                              /* a lone quote stays */
        { "a=\"x", "a=\"x;", 1 },
        { "a=x\"", "a=x\";", 1 },
        { "a=\"\"x\"\"", "a=\"x\";", 1 },                    /* only one pair is stripped */
        { "a= \"q\" ", "a=q;", 1 },                          /* trimmed before unquoting */
        { "a=%20+b", "a=%20+b;", 1 },                        /* no percent-decoding */
        { "a=b=c", "a=b=c;", 1 },
        { "=v", "=v;", 1 },
        { "garbage; x=1; \x01\xff; y=2", "x=1;y=2;", 2 },    /* pairs without '=' skipped */
        { "a=1, b=2", "a=1, b=2;", 1 },                      /* ',' is not a separator */
        { "sid=abc; sid=def", "sid=abc;sid=def;", 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int pairs;
        collected c = cookies(cases[i].in, &pairs);
        if (strcmp(c.text, cases[i].want) != 0 || pairs != cases[i].pairs ||
            c.calls != cases[i].pairs)
            fail_msg("case %zu (%s): got \"%s\" (%d pairs)", i, cases[i].in, c.text, pairs);
    }
}

static void cookies_point_into_the_header(void **state)
{
    (void)state;
    static const char in[] = "a=1; b=\"x\"";
    span range = { in, in + sizeof in - 1, 1 };
    assert_int_equal(form_parse_cookies(in, sizeof in - 1, check_inside_span, &range), 2);
    assert_true(range.ok);
}

static void cookie_callback_can_stop(void **state)
{
    (void)state;
    collected c = { .stop_after = 1 };
    assert_int_equal(form_parse_cookies("a=1; b=2", 8, collect, &c), 1);
    assert_string_equal(c.text, "a=1;");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_cases),
        cmocka_unit_test(urlencoded_pairs),
        cmocka_unit_test(urlencoded_slices_point_into_scratch),
        cmocka_unit_test(urlencoded_callback_can_stop),
        cmocka_unit_test(urlencoded_stops_at_len),
        cmocka_unit_test(urlencoded_counts_without_callback),
        cmocka_unit_test(cookie_cases),
        cmocka_unit_test(cookies_point_into_the_header),
        cmocka_unit_test(cookie_callback_can_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
