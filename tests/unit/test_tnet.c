/* tnet_parse / tnet_size / tnet_write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tnet.h"

/* Parses a C string literal (no embedded NULs) and returns tnet_parse's result. */
static long parse_lit(const char *s, tnet_item *it)
{
    return tnet_parse(s, strlen(s), it);
}

static void parses_every_type(void **state)
{
    (void)state;
    static const struct { const char *text; char type; const char *payload; } cases[] = {
        { "5:hello,", TNET_STRING, "hello" },
        { "0:,", TNET_STRING, "" },
        { "2:42#", TNET_INT, "42" },
        { "3:1.5^", TNET_FLOAT, "1.5" },
        { "4:true!", TNET_BOOL, "true" },
        { "0:~", TNET_NULL, "" },
        { "8:1:a,1:b,}", TNET_DICT, "1:a,1:b," },
        { "8:1:a,1:b,]", TNET_LIST, "1:a,1:b," },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tnet_item it;
        assert_int_equal(parse_lit(cases[i].text, &it), (long)strlen(cases[i].text));
        assert_int_equal(it.type, cases[i].type);
        assert_int_equal(it.payload.n, strlen(cases[i].payload));
        assert_memory_equal(it.payload.p, cases[i].payload, it.payload.n);
        assert_ptr_equal(it.payload.p, cases[i].text + (strchr(cases[i].text, ':') - cases[i].text) + 1);
    }
}

static void stops_after_one_item(void **state)
{
    (void)state;
    tnet_item it;
    const char *two = "3:abc,2:de,";
    assert_int_equal(parse_lit(two, &it), 6);
    assert_true(slice_eq(it.payload, "abc"));
    assert_int_equal(parse_lit(two + 6, &it), 5);
    assert_true(slice_eq(it.payload, "de"));
}

static void payload_may_hold_any_byte(void **state)
{
    (void)state;
    const char buf[] = { '4', ':', 0, ',', ':', '\xff', ',' };
    tnet_item it;
    assert_int_equal(tnet_parse(buf, sizeof buf, &it), (long)sizeof buf);
    assert_int_equal(it.payload.n, 4);
    assert_memory_equal(it.payload.p, buf + 2, 4);
}

static void rejects_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",                 /* nothing */
        ":abc,",            /* no length */
        "5hello,",          /* no colon */
        "5:hell",           /* payload runs past the end, no tag */
        "5:hello",          /* no tag */
        "6:hello,",         /* length one too long */
        "05:hello,",        /* leading zero */
        "00:,",             /* leading zero */
        "5:hello?",         /* unknown tag */
        "1000000000:x,",    /* 10 digits */
        "-1:,",             /* sign */
        " 1:a,",            /* leading space */
        "3",                /* digits only */
        "3:",               /* colon at the end */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tnet_item it;
        assert_int_equal(parse_lit(bad[i], &it), -1);
    }
}

static void nine_digit_length_is_checked_against_the_buffer(void **state)
{
    (void)state;
    tnet_item it;
    /* 999999999 is a legal length but far past these few bytes. */
    assert_int_equal(parse_lit("999999999:abc,", &it), -1);
}

static void every_prefix_of_a_valid_item_is_rejected(void **state)
{
    (void)state;
    const char *full = "12:3:abc,3:def,]";
    size_t n = strlen(full);
    for (size_t cut = 0; cut < n; cut++) {
        char *copy = malloc(cut ? cut : 1);   /* exact size so ASan sees over-reads */
        memcpy(copy, full, cut);
        tnet_item it;
        assert_int_equal(tnet_parse(copy, cut, &it), -1);
        free(copy);
    }
}

static void write_round_trips(void **state)
{
    (void)state;
    static const size_t sizes[] = { 0, 1, 9, 10, 99, 100, 12345 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *payload = malloc(n + 1), *out = malloc(tnet_size(n));
        memset(payload, 'x', n);
        size_t written = tnet_write(out, TNET_STRING, payload, n);
        assert_int_equal(written, tnet_size(n));
        tnet_item it;
        assert_int_equal(tnet_parse(out, written, &it), (long)written);
        assert_int_equal(it.type, TNET_STRING);
        assert_int_equal(it.payload.n, n);
        assert_memory_equal(it.payload.p, payload, n);
        free(payload);
        free(out);
    }
}

static void write_exact_bytes(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(tnet_size(5), 8);
    assert_int_equal(tnet_write(out, TNET_STRING, "hello", 5), 8);
    assert_memory_equal(out, "5:hello,", 8);
    assert_int_equal(tnet_write(out, TNET_NULL, "", 0), 3);
    assert_memory_equal(out, "0:~", 3);
    assert_int_equal(tnet_write(out, TNET_DICT, "1:a,1:b,", 8), 11);
    assert_memory_equal(out, "8:1:a,1:b,}", 11);
    assert_int_equal(tnet_size(10), 14);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_every_type),
        cmocka_unit_test(stops_after_one_item),
        cmocka_unit_test(payload_may_hold_any_byte),
        cmocka_unit_test(rejects_malformed),
        cmocka_unit_test(nine_digit_length_is_checked_against_the_buffer),
        cmocka_unit_test(every_prefix_of_a_valid_item_is_rejected),
        cmocka_unit_test(write_round_trips),
        cmocka_unit_test(write_exact_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
