/* Crypto for secure cookies, sessions, CSRF tokens and passwords, on libsodium,
 * in plain C: signed values (HMAC-SHA256 over name, value and timestamp,
 * checked in constant time), argon2id password hashes worked off the loop
 * (runtime/offload.c), random tokens, base64url. The Lua face, lubeck.core.crypto's
 * sign_value, hash_password, ..., is host/lua/lua_crypto.c.
 *
 * Signed value format (what a secure cookie holds):
 *     B64(value) "|" TIMESTAMP "|" B64(HMAC-SHA256(secret, name "|" B64(value) "|" TIMESTAMP))
 * B64 is base64url without padding; TIMESTAMP is decimal Unix seconds. */
#ifndef LUBECK_CRYPTO_H
#define LUBECK_CRYPTO_H

#include <ev.h>
#include <stddef.h>

#define CRYPTO_MAC_BYTES 32          /* HMAC-SHA256 */
#define CRYPTO_MAX_TOKEN_BYTES 1024
#define CRYPTO_MAX_TIME 1e15         /* the largest timestamp a signed value takes */

/* libsodium's one-time start: 0, or -1 when it cannot run. */
int crypto_init(void);

/* ---- base64url without padding ---- */
/* The room (with the NUL) the text of n bytes needs. */
size_t crypto_b64_size(size_t n);
/* The text of bin into out (size at least crypto_b64_size(n)), NUL-terminated. */
void crypto_b64_encode(char *out, size_t size, const void *bin, size_t n);
/* The room the bytes of a len-long text need. */
size_t crypto_unb64_size(size_t len);
/* The bytes of text s into out: 0 with *n set, or -1 when s is not base64url. */
int crypto_b64_decode(void *out, size_t size, const char *s, size_t len, size_t *n);

void crypto_hmac_sha256(unsigned char mac[CRYPTO_MAC_BYTES], const void *key, size_t klen,
                        const void *msg, size_t mlen);
/* 1 when a and b are the same bytes, in time that depends only on the lengths. */
int crypto_equal(const void *a, size_t alen, const void *b, size_t blen);
/* nbytes (1..CRYPTO_MAX_TOKEN_BYTES) random bytes as text into out (size at
 * least crypto_b64_size(nbytes)): 0, or -1 for a count out of range. */
int crypto_random_token(char *out, size_t size, size_t nbytes);

/* ---- signed values (the format above) ---- */
/* The room (with the NUL) a signed value of vlen bytes needs. */
size_t crypto_signed_size(size_t vlen);
/* Signs value (at Unix time when, 0..CRYPTO_MAX_TIME) into out; returns its length. */
size_t crypto_sign_value(char *out, size_t size, const char *secret, size_t slen,
                         const char *name, size_t nlen, const char *value, size_t vlen, long long when);
/* Checks signed text s: 0 with the value in out (room: crypto_unb64_size(len)),
 * its length in *vlen and its time in *when; or -1 with *err "malformed",
 * "bad signature" or "expired" (when has_max and now - time > max_age). */
int crypto_verify_value(const char *secret, size_t slen, const char *name, size_t nlen,
                        const char *s, size_t len, int has_max, double max_age, double now,
                        char *out, size_t *vlen, long long *when, const char **err);

/* ---- passwords ----
 * argon2id with libsodium's interactive limits takes tens of milliseconds and
 * 64 MiB per call, by design: a job runs on the offload pool (at most
 * OFFLOAD_THREADS at once, which also bounds the memory) or, with no pool,
 * in place. */
typedef struct crypto_pw crypto_pw;
/* On the loop once a submitted job is done; the job is the callee's to free. */
typedef void (*crypto_pw_done)(crypto_pw *job, void *ud);

/* Whether hash can be an argon2id hash at all (else no password matches it). */
int crypto_pw_hash_ok(const char *hash, size_t hlen);
/* A job that hashes pw with a fresh salt; NULL when out of memory. */
crypto_pw *crypto_pw_hash(const char *pw, size_t len);
/* A job that checks pw against hash (crypto_pw_hash_ok); NULL when out of memory. */
crypto_pw *crypto_pw_verify(const char *pw, size_t len, const char *hash, size_t hlen);
/* Works job on the pool, then calls done(job, ud) on loop: 0, or -1 when no
 * helper thread could start (the job is still the caller's: crypto_pw_run). */
int crypto_pw_submit(crypto_pw *job, struct ev_loop *loop, crypto_pw_done done, void *ud);
/* The submitter no longer wants the outcome: done is not called, and the job
 * frees itself once the pool is done with it. */
void crypto_pw_abandon(crypto_pw *job);
/* Works job here and now. */
void crypto_pw_run(crypto_pw *job);
int crypto_pw_is_verify(const crypto_pw *job);
/* A worked verify job: 1 when the password matched. */
int crypto_pw_matched(const crypto_pw *job);
/* A worked hash job: the "$argon2id$..." text, or NULL (out of memory). */
const char *crypto_pw_hashed(const crypto_pw *job);
/* Wipes the password and the hash and frees the job. */
void crypto_pw_free(crypto_pw *job);

#endif
