#define _GNU_SOURCE
/* Crypto for secure cookies, sessions, CSRF tokens and passwords, on libsodium.
 * See crypto.h for the signed value format. Misuse (a missing or empty secret)
 * raises; a value that does not verify returns nil, reason. */
#include "crypto.h"

#include <lauxlib.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "offload.h"
#include "scheduler.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define MAC_BYTES crypto_auth_hmacsha256_BYTES
#define MAX_TOKEN_BYTES 1024

static const char *check_secret(lua_State *L, int idx, size_t *len)
{
    const char *s = luaL_checklstring(L, idx, len);
    if (*len == 0) luaL_argerror(L, idx, "the secret is empty");
    return s;
}

/* HMAC-SHA256(secret, name "|" b64 "|" ts) into mac. */
static void mac_of(unsigned char mac[MAC_BYTES], const char *secret, size_t secret_len,
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

/* Pushes the base64url form of bin. */
static void push_b64(lua_State *L, const unsigned char *bin, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, B64);
    char stack[512];
    char *out = cap <= sizeof stack ? stack : malloc(cap);
    if (!out) { luaL_error(L, "out of memory"); return; }
    sodium_bin2base64(out, cap, bin, len, B64);
    lua_pushstring(L, out);
    if (out != stack) free(out);
}

/* Decodes base64url s into a new string on the stack; returns 0, or -1 (nothing
 * pushed) when s is not base64url. */
static int push_unb64(lua_State *L, const char *s, size_t len)
{
    size_t cap = len / 4 * 3 + 3;
    char stack[512];
    unsigned char *out = cap <= sizeof stack ? (unsigned char *)stack : malloc(cap);
    if (!out) { luaL_error(L, "out of memory"); return -1; }
    size_t n = 0;
    const char *end = NULL;
    int rc = sodium_base642bin(out, cap, s, len, NULL, &n, &end, B64);
    if (rc == 0 && end == s + len) lua_pushlstring(L, (const char *)out, n);
    else rc = -1;
    if ((char *)out != stack) free(out);
    return rc == 0 ? 0 : -1;
}

/* sign_value(secret, name, value [, timestamp = now]) → "B64|TS|MAC" */
static int l_sign_value(lua_State *L)
{
    size_t slen, nlen, vlen;
    const char *secret = check_secret(L, 1, &slen);
    const char *name = luaL_checklstring(L, 2, &nlen);
    const char *value = luaL_checklstring(L, 3, &vlen);
    lua_Number when = luaL_optnumber(L, 4, (lua_Number)time(NULL));
    if (when < 0 || when > 1e15) return luaL_argerror(L, 4, "not a Unix time");
    char ts[32];
    int tlen = snprintf(ts, sizeof ts, "%lld", (long long)when);
    push_b64(L, (const unsigned char *)value, vlen);          /* [5] */
    size_t blen;
    const char *b64 = lua_tolstring(L, -1, &blen);
    unsigned char mac[MAC_BYTES];
    mac_of(mac, secret, slen, name, nlen, b64, blen, ts, (size_t)tlen);
    lua_pushliteral(L, "|");
    lua_pushlstring(L, ts, (size_t)tlen);
    lua_pushliteral(L, "|");
    push_b64(L, mac, sizeof mac);
    lua_concat(L, 5);
    return 1;
}

static int fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

/* verify_value(secret, name, signed [, max_age_seconds [, now]]) → value, timestamp
 * | nil, "malformed" | "bad signature" | "expired" */
static int l_verify_value(lua_State *L)
{
    size_t slen, nlen, len;
    const char *secret = check_secret(L, 1, &slen);
    const char *name = luaL_checklstring(L, 2, &nlen);
    const char *s = luaL_checklstring(L, 3, &len);
    int has_max = !lua_isnoneornil(L, 4);
    lua_Number max_age = has_max ? luaL_checknumber(L, 4) : 0;
    lua_Number now = luaL_optnumber(L, 5, (lua_Number)time(NULL));

    const char *bar2 = memrchr(s, '|', len);
    if (!bar2 || bar2 == s) return fail(L, "malformed");
    const char *bar1 = memrchr(s, '|', (size_t)(bar2 - s));
    if (!bar1) return fail(L, "malformed");
    const char *b64 = s, *ts = bar1 + 1, *sig = bar2 + 1;
    size_t blen = (size_t)(bar1 - s), tlen = (size_t)(bar2 - ts), siglen = (size_t)(s + len - sig);
    if (tlen == 0 || tlen > 15) return fail(L, "malformed");
    long long when = 0;
    for (size_t i = 0; i < tlen; i++) {
        if (ts[i] < '0' || ts[i] > '9') return fail(L, "malformed");
        when = when * 10 + (ts[i] - '0');
    }
    unsigned char got[MAC_BYTES], want[MAC_BYTES];
    size_t glen = 0;
    const char *end = NULL;
    if (sodium_base642bin(got, sizeof got, sig, siglen, NULL, &glen, &end, B64) != 0 ||
        end != sig + siglen || glen != MAC_BYTES)
        return fail(L, "bad signature");
    mac_of(want, secret, slen, name, nlen, b64, blen, ts, tlen);
    if (sodium_memcmp(got, want, MAC_BYTES) != 0) return fail(L, "bad signature");
    if (has_max && now - (lua_Number)when > max_age) return fail(L, "expired");
    if (push_unb64(L, b64, blen) != 0) return fail(L, "malformed");
    lua_pushnumber(L, (lua_Number)when);
    return 2;
}

/* hmac_sha256(key, message) → 32 raw bytes */
static int l_hmac_sha256(lua_State *L)
{
    size_t klen, mlen;
    const char *key = check_secret(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    crypto_auth_hmacsha256_state st;
    unsigned char mac[MAC_BYTES];
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, klen);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, mlen);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* random_token([bytes = 32]) → base64url of that many random bytes */
static int l_random_token(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 32);
    if (n < 1 || n > MAX_TOKEN_BYTES) return luaL_argerror(L, 1, "between 1 and 1024 bytes");
    unsigned char buf[MAX_TOKEN_BYTES];
    randombytes_buf(buf, (size_t)n);
    push_b64(L, buf, (size_t)n);
    return 1;
}

/* secure_compare(a, b) → boolean, in time that depends only on the lengths */
static int l_secure_compare(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, alen == blen && (alen == 0 || sodium_memcmp(a, b, alen) == 0));
    return 1;
}

static int l_b64url_encode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    push_b64(L, (const unsigned char *)s, len);
    return 1;
}

/* b64url_decode(s) → bytes | nil */
static int l_b64url_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (push_unb64(L, s, len) != 0) lua_pushnil(L);
    return 1;
}

/* ---- passwords ----------------------------------------------------------------
 * argon2id with libsodium's interactive limits takes tens of milliseconds and
 * 64 MiB per call, by design. Inside a request the work goes to the offload
 * pool (offload.h: at most OFFLOAD_THREADS at once, which also bounds the
 * memory) and only the calling coroutine waits; elsewhere (the app's top
 * level, a bare Lua state) it runs in place. */

typedef struct pw_job {
    lbk_offload off;             /* first: the pool hands it back as the job */
    lbk_task *task;              /* the waiting task; NULL once it stopped waiting */
    int verify;                  /* 0: hash pw; 1: check pw against hash */
    char *pw;                    /* owned: wiped and freed with the job */
    size_t pwlen;
    char hash[crypto_pwhash_STRBYTES];
    int rc;                      /* libsodium's result */
} pw_job;

static int pw_hash(char out[crypto_pwhash_STRBYTES], const char *pw, size_t len)
{
    return crypto_pwhash_str_alg(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                 crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13);
}

static int pw_hash_ok(const char *hash, size_t hlen)
{
    size_t plen = strlen(crypto_pwhash_argon2id_STRPREFIX);
    return hlen < crypto_pwhash_STRBYTES && strlen(hash) == hlen &&
           strncmp(hash, crypto_pwhash_argon2id_STRPREFIX, plen) == 0;
}

static void pw_run(pw_job *job)
{
    job->rc = job->verify ? crypto_pwhash_str_verify(job->hash, job->pw, job->pwlen)
                          : pw_hash(job->hash, job->pw, job->pwlen);
}

static void pw_work(lbk_offload *off)
{
    pw_run((pw_job *)off);
}

static void pw_free(pw_job *job)
{
    if (job->pw) {
        sodium_memzero(job->pw, job->pwlen);
        free(job->pw);
    }
    sodium_memzero(job->hash, sizeof job->hash);
    free(job);
}

/* Pushes a finished job's results; returns their count. */
static int pw_push(lua_State *L, pw_job *job)
{
    if (job->verify) {
        lua_pushboolean(L, job->rc == 0);
        return 1;
    }
    if (job->rc != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "hash_password: out of memory");
        return 2;
    }
    lua_pushstring(L, job->hash);
    return 1;
}

/* On the loop once the pool is done with it. */
static void pw_finish(lbk_offload *off)
{
    pw_job *job = (pw_job *)off;
    lbk_task *t = job->task;
    if (t && sched_waits_on(t, job)) {
        int n = pw_push(t->co, job);
        pw_free(job);
        sched_complete(t, n);
        return;
    }
    pw_free(job);
}

/* The waiting task gave up (its request was cancelled): the worker finishes
 * and pw_finish frees the job. */
static void pw_undo(lbk_task *t)
{
    pw_job *job = t->wait_on;
    if (job) job->task = NULL;
}

/* The task running on L when it may wait, else NULL. */
static lbk_task *pw_task(lua_State *L)
{
    lbk_gen *g = lua_touserdata(L, lua_upvalueindex(1));
    if (!g || !g->sched) return NULL;
    lbk_task *t = g->sched->current;
    return t && t->co == L ? t : NULL;
}

/* Runs a job on the pool and suspends the calling task until it is done;
 * without a task (or a thread), runs it here. */
static int pw_call(lua_State *L, pw_job *job)
{
    lbk_task *t = pw_task(L);
    if (t) {
        job->task = t;
        job->off.work = pw_work;
        job->off.finish = pw_finish;
        int rc = sched_wait(L, t, job, -1, pw_undo, 0);
        if (sched_waits_on(t, job)) {   /* really waiting */
            if (offload_submit(&job->off, t->gen->sched->loop) == 0) return rc;
            /* no thread: undo the wait and work in place */
            sched_unwait(t);   /* pw_undo forgets the task: the job is ours again */
            job->task = NULL;
            lua_settop(L, 0);
        } else {
            pw_free(job);    /* refused: the request was cancelled; rc values are pushed */
            return rc;
        }
    }
    pw_run(job);
    int n = pw_push(L, job);
    pw_free(job);
    return n;
}

static pw_job *pw_new(lua_State *L, const char *pw, size_t len)
{
    pw_job *job = calloc(1, sizeof *job);
    char *copy = malloc(len ? len : 1);
    if (!job || !copy) {
        free(job);
        free(copy);
        luaL_error(L, "out of memory");
        return NULL;
    }
    memcpy(copy, pw, len);
    job->pw = copy;
    job->pwlen = len;
    return job;
}

/* hash_password(pw) → "$argon2id$v=19$m=...": interactive limits, a fresh salt */
static int l_hash_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    pw_job *job = pw_new(L, pw, len);
    return pw_call(L, job);
}

/* verify_password(pw, hash) → boolean (false for a hash that is not argon2id) */
static int l_verify_password(lua_State *L)
{
    size_t len, hlen;
    const char *pw = luaL_checklstring(L, 1, &len);
    const char *hash = luaL_checklstring(L, 2, &hlen);
    if (!pw_hash_ok(hash, hlen)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    pw_job *job = pw_new(L, pw, len);
    job->verify = 1;
    memcpy(job->hash, hash, hlen + 1);
    return pw_call(L, job);
}

static const luaL_Reg crypto_functions[] = {
    { "sign_value", l_sign_value },
    { "verify_value", l_verify_value },
    { "hmac_sha256", l_hmac_sha256 },
    { "random_token", l_random_token },
    { "secure_compare", l_secure_compare },
    { "b64url_encode", l_b64url_encode },
    { "b64url_decode", l_b64url_decode },
    { "hash_password", l_hash_password },
    { "verify_password", l_verify_password },
    { NULL, NULL }
};

void crypto_open(lua_State *L, lbk_gen *g)
{
    (void)g;
    if (sodium_init() < 0) luaL_error(L, "libsodium failed to initialise");
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, crypto_functions, 1);
}
