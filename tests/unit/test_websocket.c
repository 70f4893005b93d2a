/* websocket_frame_header and websocket_utf8_valid (host/server/websocket.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "websocket.h"

static void header_uses_the_shortest_length_form(void **state)
{
    (void)state;
    static const struct { uint64_t len; size_t size; unsigned char bytes[WS_MAX_HEADER]; } cases[] = {
        { 0, 2, { 0x81, 0 } },
        { 5, 2, { 0x81, 5 } },
        { 125, 2, { 0x81, 125 } },
        { 126, 4, { 0x81, 126, 0, 126 } },
        { 300, 4, { 0x81, 126, 0x01, 0x2c } },
        { 65535, 4, { 0x81, 126, 0xff, 0xff } },
        { 65536, 10, { 0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0 } },
        { 70000, 10, { 0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70 } },
        { 0x0102030405060708ull, 10, { 0x81, 127, 1, 2, 3, 4, 5, 6, 7, 8 } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char out[WS_MAX_HEADER];
        memset(out, 0xee, sizeof out);
        size_t n = websocket_frame_header(out, WS_OP_TEXT, cases[i].len);
        assert_int_equal(n, cases[i].size);
        assert_memory_equal(out, cases[i].bytes, n);
    }
}

static void header_sets_fin_and_opcode_and_never_masks(void **state)
{
    (void)state;
    static const int ops[] = { WS_OP_TEXT, WS_OP_BINARY, WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG };
    static const uint64_t lens[] = { 1, 200, 100000 };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            unsigned char out[WS_MAX_HEADER];
            websocket_frame_header(out, ops[i], lens[j]);
            assert_int_equal(out[0], 0x80 | ops[i]);
            assert_int_equal(out[1] & 0x80, 0);   /* server frames are not masked */
        }
}

static int valid(const char *s)
{
    return websocket_utf8_valid(s, strlen(s));
}

static void utf8_accepts_well_formed_text(void **state)
{
    (void)state;
    assert_true(valid(""));
    assert_true(valid("plain ascii"));
    assert_true(valid("h\xc3\xa9llo"));                 /* é */
    assert_true(valid("\xe2\x82\xac"));                 /* € */
    assert_true(valid("\xf0\x9f\x98\x80"));             /* U+1F600 */
    assert_true(valid("\xf4\x8f\xbf\xbf"));             /* U+10FFFF */
    assert_true(valid("\xed\x9f\xbf"));                 /* U+D7FF, just below the surrogates */
    assert_true(valid("\xee\x80\x80"));                 /* U+E000, just above */
    assert_true(websocket_utf8_valid("a\0b", 3));        /* NUL is a character */
}

static void utf8_refuses_malformed_text(void **state)
{
    (void)state;
    assert_false(valid("\xff"));
    assert_false(valid("\x80"));                        /* a lone continuation byte */
    assert_false(valid("\xc3"));                        /* cut short */
    assert_false(valid("\xe2\x82"));
    assert_false(valid("\xf0\x9f\x98"));
    assert_false(valid("\xc3\x28"));                    /* bad continuation */
    assert_false(valid("\xc0\xaf"));                    /* overlong '/' */
    assert_false(valid("\xc1\xbf"));
    assert_false(valid("\xe0\x80\xaf"));                /* overlong, 3 bytes */
    assert_false(valid("\xf0\x80\x80\xaf"));            /* overlong, 4 bytes */
    assert_false(valid("\xed\xa0\x80"));                /* U+D800: a surrogate */
    assert_false(valid("\xed\xbf\xbf"));                /* U+DFFF */
    assert_false(valid("\xf4\x90\x80\x80"));            /* U+110000 */
    assert_false(valid("\xf5\x80\x80\x80"));
    assert_false(valid("ok so far \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_uses_the_shortest_length_form),
        cmocka_unit_test(header_sets_fin_and_opcode_and_never_masks),
        cmocka_unit_test(utf8_accepts_well_formed_text),
        cmocka_unit_test(utf8_refuses_malformed_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
