#define _GNU_SOURCE
/* Crypto for secure cookies, sessions, CSRF tokens and passwords, on libsodium.
 * See crypto.h for the signed value format. Nothing here allocates but a
 * password job: callers hand in the room that the *_size functions name. */
#include "crypto.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offload.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

int crypto_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

size_t crypto_b64_size(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, B64);
}

void crypto_b64_encode(char *out, size_t size, const void *bin, size_t n)
{
    sodium_bin2base64(out, size, bin, n, B64);
}

size_t crypto_unb64_size(size_t len)
{
    return len / 4 * 3 + 3;
}

int crypto_b64_decode(void *out, size_t size, const char *s, size_t len, size_t *n)
{
    const char *end = NULL;
    *n = 0;
    if (sodium_base642bin(out, size, s, len, NULL, n, &end, B64) != 0 || end != s + len) return -1;
    return 0;
}

void crypto_hmac_sha256(unsigned char mac[CRYPTO_MAC_BYTES], const void *key, size_t klen,
                        const void *msg, size_t mlen)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, msg, mlen);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

int crypto_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || sodium_memcmp(a, b, alen) == 0);
}

int crypto_random_token(char *out, size_t size, size_t nbytes)
{
    if (nbytes < 1 || nbytes > CRYPTO_MAX_TOKEN_BYTES || size < crypto_b64_size(nbytes)) return -1;
    unsigned char buf[CRYPTO_MAX_TOKEN_BYTES];
    randombytes_buf(buf, nbytes);
    crypto_b64_encode(out, size, buf, nbytes);
    return 0;
}

/* ---- signed values ---- */

/* HMAC-SHA256(secret, name "|" b64 "|" ts) into mac. */
static void mac_of(unsigned char mac[CRYPTO_MAC_BYTES], const char *secret, size_t secret_len,
                   const char *name, size_t name_len, const char *b64, size_t b64_len,
                   const char *ts, size_t ts_len)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)name, name_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"|", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)b64, b64_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)"|", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, ts_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

size_t crypto_signed_size(size_t vlen)
{
    /* B64(value) "|" up to 20 digits "|" B64(mac) NUL */
    return crypto_b64_size(vlen) + 1 + 20 + 1 + crypto_b64_size(CRYPTO_MAC_BYTES);
}

size_t crypto_sign_value(char *out, size_t size, const char *secret, size_t slen,
                         const char *name, size_t nlen, const char *value, size_t vlen, long long when)
{
    crypto_b64_encode(out, size, value, vlen);
    size_t blen = strlen(out);
    char ts[32];
    size_t tlen = (size_t)snprintf(ts, sizeof ts, "%lld", when);
    unsigned char mac[CRYPTO_MAC_BYTES];
    mac_of(mac, secret, slen, name, nlen, out, blen, ts, tlen);
    char *p = out + blen;
    *p++ = '|';
    memcpy(p, ts, tlen);
    p += tlen;
    *p++ = '|';
    crypto_b64_encode(p, size - (size_t)(p - out), mac, sizeof mac);
    return (size_t)(p - out) + strlen(p);
}

static int fail(const char **err, const char *reason)
{
    *err = reason;
    return -1;
}

int crypto_verify_value(const char *secret, size_t slen, const char *name, size_t nlen,
                        const char *s, size_t len, int has_max, double max_age, double now,
                        char *out, size_t *vlen, long long *when, const char **err)
{
    const char *bar2 = memrchr(s, '|', len);
    if (!bar2 || bar2 == s) return fail(err, "malformed");
    const char *bar1 = memrchr(s, '|', (size_t)(bar2 - s));
    if (!bar1) return fail(err, "malformed");
    const char *b64 = s, *ts = bar1 + 1, *sig = bar2 + 1;
    size_t blen = (size_t)(bar1 - s), tlen = (size_t)(bar2 - ts), siglen = (size_t)(s + len - sig);
    if (tlen == 0 || tlen > 15) return fail(err, "malformed");
    long long t = 0;
    for (size_t i = 0; i < tlen; i++) {
        if (ts[i] < '0' || ts[i] > '9') return fail(err, "malformed");
        t = t * 10 + (ts[i] - '0');
    }
    unsigned char got[CRYPTO_MAC_BYTES], want[CRYPTO_MAC_BYTES];
    size_t glen = 0;
    if (crypto_b64_decode(got, sizeof got, sig, siglen, &glen) != 0 || glen != CRYPTO_MAC_BYTES)
        return fail(err, "bad signature");
    mac_of(want, secret, slen, name, nlen, b64, blen, ts, tlen);
    if (sodium_memcmp(got, want, CRYPTO_MAC_BYTES) != 0) return fail(err, "bad signature");
    if (has_max && now - (double)t > max_age) return fail(err, "expired");
    if (crypto_b64_decode(out, crypto_unb64_size(len), b64, blen, vlen) != 0) return fail(err, "malformed");
    *when = t;
    return 0;
}

/* ---- passwords ---- */

struct crypto_pw {
    lbk_offload off;             /* first: the pool hands it back as the job */
    crypto_pw_done done;         /* NULL: abandoned, free it when finished */
    void *ud;
    int verify;                  /* 0: hash pw; 1: check pw against hash */
    char *pw;                    /* owned: wiped and freed with the job */
    size_t pwlen;
    char hash[crypto_pwhash_STRBYTES];
    int rc;                      /* libsodium's result */
};

int crypto_pw_hash_ok(const char *hash, size_t hlen)
{
    size_t plen = strlen(crypto_pwhash_argon2id_STRPREFIX);
    return hlen < crypto_pwhash_STRBYTES && strlen(hash) == hlen &&
           strncmp(hash, crypto_pwhash_argon2id_STRPREFIX, plen) == 0;
}

static crypto_pw *pw_new(const char *pw, size_t len)
{
    crypto_pw *job = calloc(1, sizeof *job);
    char *copy = malloc(len ? len : 1);
    if (!job || !copy) {
        free(job);
        free(copy);
        return NULL;
    }
    memcpy(copy, pw, len);
    job->pw = copy;
    job->pwlen = len;
    return job;
}

crypto_pw *crypto_pw_hash(const char *pw, size_t len)
{
    return pw_new(pw, len);
}

crypto_pw *crypto_pw_verify(const char *pw, size_t len, const char *hash, size_t hlen)
{
    crypto_pw *job = pw_new(pw, len);
    if (!job) return NULL;
    job->verify = 1;
    if (hlen >= sizeof job->hash) hlen = 0;   /* not a hash (crypto_pw_hash_ok): matches nothing */
    memcpy(job->hash, hash, hlen);
    job->hash[hlen] = 0;
    return job;
}

void crypto_pw_run(crypto_pw *job)
{
    job->rc = job->verify ? crypto_pwhash_str_verify(job->hash, job->pw, job->pwlen)
                          : crypto_pwhash_str_alg(job->hash, job->pw, job->pwlen,
                                                  crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                  crypto_pwhash_MEMLIMIT_INTERACTIVE,
                                                  crypto_pwhash_ALG_ARGON2ID13);
}

static void pw_work(lbk_offload *off)
{
    crypto_pw_run((crypto_pw *)off);
}

/* On the loop once the pool is done with it. */
static void pw_finish(lbk_offload *off)
{
    crypto_pw *job = (crypto_pw *)off;
    if (job->done) job->done(job, job->ud);
    else crypto_pw_free(job);
}

int crypto_pw_submit(crypto_pw *job, struct ev_loop *loop, crypto_pw_done done, void *ud)
{
    job->done = done;
    job->ud = ud;
    job->off.work = pw_work;
    job->off.finish = pw_finish;
    return offload_submit(&job->off, loop);
}

void crypto_pw_abandon(crypto_pw *job)
{
    job->done = NULL;
    job->ud = NULL;
}

int crypto_pw_is_verify(const crypto_pw *job)
{
    return job->verify;
}

int crypto_pw_matched(const crypto_pw *job)
{
    return job->verify && job->rc == 0;
}

const char *crypto_pw_hashed(const crypto_pw *job)
{
    return !job->verify && job->rc == 0 ? job->hash : NULL;
}

void crypto_pw_free(crypto_pw *job)
{
    if (!job) return;
    if (job->pw) {
        sodium_memzero(job->pw, job->pwlen);
        free(job->pw);
    }
    sodium_memzero(job->hash, sizeof job->hash);
    free(job);
}
