/* The crypto core (host/services/crypto.c) in plain C: HMAC-SHA256 against
 * RFC 4231, signed values (the documented format, round trip, each refusal),
 * base64url, constant-time compare, tokens, and argon2id jobs run in place,
 * through the offload pool, and abandoned while the pool works on them. The
 * same functions as Lua calls are tests/unit/test_lua_crypto.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"

#define S(x) x, strlen(x)

static int setup(void **state)
{
    return crypto_init();
}

static void test_hmac_matches_rfc4231(void **state)
{
    unsigned char mac[CRYPTO_MAC_BYTES];
    crypto_hmac_sha256(mac, S("Jefe"), S("what do ya want for nothing?"));   /* test case 2 */
    char hex[2 * CRYPTO_MAC_BYTES + 1];
    for (int i = 0; i < CRYPTO_MAC_BYTES; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static char signed_text[512];

static const char *sign(const char *secret, const char *name, const char *value, long long when)
{
    assert_true(crypto_signed_size(strlen(value)) <= sizeof signed_text);
    size_t n = crypto_sign_value(signed_text, sizeof signed_text, S(secret), S(name), S(value), when);
    assert_int_equal(n, strlen(signed_text));
    return signed_text;
}

/* The reason s is refused, or its value ("=value@time") when it verifies. */
static const char *verify(const char *secret, const char *name, const char *s, int has_max,
                          double max_age, double now)
{
    static char out[600];
    char value[512];
    size_t vlen;
    long long when;
    const char *err = NULL;
    assert_true(crypto_unb64_size(strlen(s)) <= sizeof value);
    if (crypto_verify_value(S(secret), S(name), S(s), has_max, max_age, now, value, &vlen, &when, &err) != 0)
        return err;
    snprintf(out, sizeof out, "=%.*s@%lld", (int)vlen, value, when);
    return out;
}

static void test_signed_value_format(void **state)
{
    /* B64(value) "|" TS "|" B64(HMAC-SHA256(secret, name "|" B64(value) "|" TS)) */
    unsigned char mac[CRYPTO_MAC_BYTES];
    crypto_hmac_sha256(mac, S("secret"), S("sid|aGk|1700000000"));
    char b64[64], want[128];
    crypto_b64_encode(b64, sizeof b64, mac, sizeof mac);
    snprintf(want, sizeof want, "aGk|1700000000|%s", b64);
    assert_string_equal(sign("secret", "sid", "hi", 1700000000), want);
}

static void test_signed_value_round_trip_and_refusals(void **state)
{
    char s[512];
    snprintf(s, sizeof s, "%s", sign("k", "n", "hello; world", 1000));
    assert_string_equal(verify("k", "n", s, 0, 0, 0), "=hello; world@1000");
    assert_string_equal(verify("k", "n", s, 1, 100, 1100), "=hello; world@1000");
    assert_string_equal(verify("k", "n", s, 1, 100, 1101), "expired");
    assert_string_equal(verify("k", "other", s, 0, 0, 0), "bad signature");
    assert_string_equal(verify("k2", "n", s, 0, 0, 0), "bad signature");
    char tampered[512];
    snprintf(tampered, sizeof tampered, "%s", s);
    tampered[strlen(tampered) - 1] ^= 1;
    assert_string_equal(verify("k", "n", tampered, 0, 0, 0), "bad signature");
    snprintf(tampered, sizeof tampered, "%.*s", (int)strlen(s) - 1, s);
    assert_string_equal(verify("k", "n", tampered, 0, 0, 0), "bad signature");
    assert_string_equal(verify("k", "n", "no bars", 0, 0, 0), "malformed");
    assert_string_equal(verify("k", "n", "|x", 0, 0, 0), "malformed");
    assert_string_equal(verify("k", "n", "a|b|c", 0, 0, 0), "malformed");
    assert_string_equal(verify("k", "n", "", 0, 0, 0), "malformed");
    assert_string_equal(verify("k", "n", sign("k", "n", "", 5), 0, 0, 0), "=@5");
}

static void test_b64url_compare_and_tokens(void **state)
{
    char text[16];
    unsigned char bytes[16];
    size_t n;
    assert_int_equal(crypto_b64_size(3), 5);   /* four characters and the NUL */
    crypto_b64_encode(text, sizeof text, "\0\1\377", 3);
    assert_string_equal(text, "AAH_");
    assert_int_equal(crypto_b64_decode(bytes, sizeof bytes, S("AAH_"), &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(bytes, "\0\1\377", 3);
    assert_int_equal(crypto_b64_decode(bytes, sizeof bytes, S("not base64!"), &n), -1);
    assert_int_equal(crypto_b64_decode(bytes, sizeof bytes, S("AAH/"), &n), -1);   /* not the URL alphabet */

    assert_true(crypto_equal(S("abc"), S("abc")));
    assert_false(crypto_equal(S("abc"), S("abd")));
    assert_false(crypto_equal(S("abc"), S("abcd")));
    assert_true(crypto_equal(S(""), S("")));

    char a[64], b[64];
    assert_int_equal(crypto_random_token(a, sizeof a, 32), 0);
    assert_int_equal(crypto_random_token(b, sizeof b, 32), 0);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_int_equal(crypto_random_token(a, sizeof a, 0), -1);
    assert_int_equal(crypto_random_token(a, sizeof a, CRYPTO_MAX_TOKEN_BYTES + 1), -1);
    assert_int_equal(crypto_random_token(a, 10, 32), -1);   /* no room */
}

static void test_passwords_in_place(void **state)
{
    crypto_pw *job = crypto_pw_hash(S("correct horse"));
    crypto_pw_run(job);
    char hash[256];
    snprintf(hash, sizeof hash, "%s", crypto_pw_hashed(job));
    crypto_pw_free(job);
    assert_int_equal(strncmp(hash, "$argon2id$v=19$m=65536,t=2,p=1$", 31), 0);
    assert_true(crypto_pw_hash_ok(S(hash)));
    assert_false(crypto_pw_hash_ok(S("not a hash")));
    assert_false(crypto_pw_hash_ok(S("")));

    job = crypto_pw_verify(S("correct horse"), S(hash));
    crypto_pw_run(job);
    assert_true(crypto_pw_is_verify(job));
    assert_true(crypto_pw_matched(job));
    assert_null(crypto_pw_hashed(job));
    crypto_pw_free(job);
    job = crypto_pw_verify(S("correct horsE"), S(hash));
    crypto_pw_run(job);
    assert_false(crypto_pw_matched(job));
    crypto_pw_free(job);
}

static int done_calls;
static char pool_hash[256];

static void hashed(crypto_pw *job, void *ud)
{
    done_calls++;
    assert_ptr_equal(ud, &done_calls);
    snprintf(pool_hash, sizeof pool_hash, "%s", crypto_pw_hashed(job) ? crypto_pw_hashed(job) : "");
    crypto_pw_free(job);
}

static void test_passwords_on_the_pool(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    done_calls = 0;
    crypto_pw *job = crypto_pw_hash(S("battery staple"));
    assert_int_equal(crypto_pw_submit(job, loop, hashed, &done_calls), 0);
    for (int i = 0; i < 1000 && !done_calls; i++) ev_run(loop, EVRUN_ONCE);
    assert_int_equal(done_calls, 1);
    job = crypto_pw_verify(S("battery staple"), S(pool_hash));
    crypto_pw_run(job);
    assert_true(crypto_pw_matched(job));
    crypto_pw_free(job);

    /* Abandoned while the pool works: done is never called; the job comes back
     * to the loop and frees itself (the loop is left with no watcher). */
    job = crypto_pw_hash(S("given up"));
    assert_int_equal(crypto_pw_submit(job, loop, hashed, &done_calls), 0);
    crypto_pw_abandon(job);
    ev_run(loop, 0);
    assert_int_equal(done_calls, 1);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_matches_rfc4231),
        cmocka_unit_test(test_signed_value_format),
        cmocka_unit_test(test_signed_value_round_trip_and_refusals),
        cmocka_unit_test(test_b64url_compare_and_tokens),
        cmocka_unit_test(test_passwords_in_place),
        cmocka_unit_test(test_passwords_on_the_pool),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
