/* lubeck.core's crypto (host/lua/lua_crypto.c over host/services/crypto.c) in a bare Lua state: signed values
 * (round trip, tampering, expiry, wrong name or secret), the documented format
 * (checked against a MAC computed here with libsodium), tokens, constant-time
 * compare, argon2id hashes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lua_crypto.h"

static lua_State *L;

static int setup(void **state)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    crypto_open(L, NULL);
    lua_setglobal(L, "c");
    return 0;
}

static int teardown(void **state)
{
    lua_close(L);
    return 0;
}

/* Runs a chunk; returns its first result as a string ("nil" for nil, "error: …"
 * when it raised). The text is valid until the next call. */
static const char *run(const char *code)
{
    static char out[1024];
    lua_settop(L, 0);
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
        snprintf(out, sizeof out, "error: %s", lua_tostring(L, -1));
    } else if (lua_isnil(L, -1)) {
        snprintf(out, sizeof out, "nil");
    } else if (lua_isboolean(L, -1)) {
        snprintf(out, sizeof out, "%s", lua_toboolean(L, -1) ? "true" : "false");
    } else {
        snprintf(out, sizeof out, "%s", lua_tostring(L, -1));
    }
    return out;
}

static void test_round_trip(void **state)
{
    assert_string_equal(run("local s = c.sign_value('k', 'n', 'hello; world') "
                            "return c.verify_value('k', 'n', s, 60)"), "hello; world");
    assert_string_equal(run("local s = c.sign_value('k', 'n', '') return c.verify_value('k', 'n', s)"), "");
    assert_string_equal(run("local v = string.rep('\\0\\255x', 1000) "
                            "local s = c.sign_value('k', 'n', v) return c.verify_value('k', 'n', s) == v"),
                        "true");
    assert_string_equal(run("local s = c.sign_value('k', 'n', 'v', 1700000000) "
                            "return select(2, c.verify_value('k', 'n', s))"), "1700000000");
}

static void test_format_matches_documentation(void **state)
{
    /* B64(value) "|" TS "|" B64(HMAC-SHA256(secret, name "|" B64(value) "|" TS)) */
    const char *msg = "sid|aGk|1700000000";
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)"secret", 6);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, mac);
    char b64[64], want[128];
    sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(want, sizeof want, "aGk|1700000000|%s", b64);
    assert_string_equal(run("return c.sign_value('secret', 'sid', 'hi', 1700000000)"), want);
}

static void test_tampering_is_refused(void **state)
{
    run("S = c.sign_value('k', 'n', 'value', 1700000000)");
    assert_string_equal(run("return select(2, c.verify_value('k', 'other', S))"), "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k2', 'n', S))"), "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', 'eA' .. S:sub(S:find('|'), -1)))"),
                        "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', S:gsub('1700000000', '1700000001')))"),
                        "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', S:sub(1, -2)))"), "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', S .. 'A'))"), "bad signature");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', 'no bars'))"), "malformed");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', '|x'))"), "malformed");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', 'a|b|c'))"), "malformed");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', ''))"), "malformed");
}

static void test_expiry(void **state)
{
    run("S = c.sign_value('k', 'n', 'v', 1000)");
    assert_string_equal(run("return c.verify_value('k', 'n', S, 100, 1100)"), "v");
    assert_string_equal(run("return select(2, c.verify_value('k', 'n', S, 100, 1101))"), "expired");
    assert_string_equal(run("return c.verify_value('k', 'n', S)"), "v");   /* no max age */
}

static void test_misuse_raises(void **state)
{
    assert_true(strstr(run("return c.sign_value('', 'n', 'v')"), "secret is empty") != NULL);
    assert_true(strncmp(run("return c.sign_value(nil, 'n', 'v')"), "error:", 6) == 0);
    assert_true(strncmp(run("return c.random_token(0)"), "error:", 6) == 0);
}

static void test_tokens_and_compare(void **state)
{
    assert_string_equal(run("local a, b = c.random_token(), c.random_token() "
                            "return #a == 43 and a ~= b and not a:find('[^%w_-]')"), "true");
    assert_string_equal(run("return #c.random_token(16)"), "22");
    assert_string_equal(run("return c.secure_compare('abc', 'abc')"), "true");
    assert_string_equal(run("return c.secure_compare('abc', 'abd')"), "false");
    assert_string_equal(run("return c.secure_compare('abc', 'abcd')"), "false");
    assert_string_equal(run("return c.secure_compare('', '')"), "true");
    assert_string_equal(run("return c.b64url_decode(c.b64url_encode('\\0\\1\\255')) == '\\0\\1\\255'"), "true");
    assert_string_equal(run("return c.b64url_decode('not base64!')"), "nil");
    assert_string_equal(run("return #c.hmac_sha256('k', 'm')"), "32");
}

static void test_passwords(void **state)
{
    run("H = c.hash_password('correct horse')");
    assert_true(strncmp(run("return H"), "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0);
    assert_string_equal(run("return c.verify_password('correct horse', H)"), "true");
    assert_string_equal(run("return c.verify_password('correct horsE', H)"), "false");
    assert_string_equal(run("return c.verify_password('', H)"), "false");
    assert_string_equal(run("return c.verify_password('correct horse', H:sub(1, -2))"), "false");
    assert_string_equal(run("return c.verify_password('x', 'not a hash')"), "false");
    assert_string_equal(run("return c.verify_password('x', '')"), "false");
    assert_string_equal(run("return c.hash_password('correct horse') ~= H"), "true");   /* salted */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_format_matches_documentation),
        cmocka_unit_test(test_tampering_is_refused),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_misuse_raises),
        cmocka_unit_test(test_tokens_and_compare),
        cmocka_unit_test(test_passwords),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
