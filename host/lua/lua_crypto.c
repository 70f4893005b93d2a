/* lubeck.core.crypto (services/crypto.c) as Lua functions. Misuse (a missing
 * or empty secret, a token size out of range) raises; a value that does not
 * verify returns nil, reason. Inside a request, hashing and checking a
 * password suspend only the calling coroutine while the offload pool works. */
#include "lua_crypto.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <time.h>

#include "crypto.h"
#include "lua_room.h"
#include "scheduler.h"

static const char *check_secret(lua_State *L, int idx, size_t *len)
{
    const char *s = luaL_checklstring(L, idx, len);
    if (*len == 0) luaL_argerror(L, idx, "the secret is empty");
    return s;
}

/* Pushes the base64url form of bin. */
static void push_b64(lua_State *L, const void *bin, size_t len)
{
    room r;
    size_t size = crypto_b64_size(len);
    crypto_b64_encode(room_take(L, &r, size), size, bin, len);
    lua_pushstring(L, r.p);
    room_free(&r);
}

static int fail(lua_State *L, const char *reason)
{
    lua_pushnil(L);
    lua_pushstring(L, reason);
    return 2;
}

/* sign_value(secret, name, value [, timestamp = now]) → "B64|TS|MAC" */
static int l_sign_value(lua_State *L)
{
    size_t slen, nlen, vlen;
    const char *secret = check_secret(L, 1, &slen);
    const char *name = luaL_checklstring(L, 2, &nlen);
    const char *value = luaL_checklstring(L, 3, &vlen);
    lua_Number when = luaL_optnumber(L, 4, (lua_Number)time(NULL));
    if (when < 0 || when > CRYPTO_MAX_TIME) return luaL_argerror(L, 4, "not a Unix time");
    room r;
    size_t size = crypto_signed_size(vlen);
    size_t n = crypto_sign_value(room_take(L, &r, size), size, secret, slen, name, nlen, value, vlen,
                                 (long long)when);
    lua_pushlstring(L, r.p, n);
    room_free(&r);
    return 1;
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
    room r;
    size_t vlen;
    long long when;
    const char *err;
    char *out = room_take(L, &r, crypto_unb64_size(len));
    if (crypto_verify_value(secret, slen, name, nlen, s, len, has_max, max_age, now, out, &vlen, &when,
                            &err) != 0) {
        room_free(&r);
        return fail(L, err);
    }
    lua_pushlstring(L, out, vlen);
    room_free(&r);
    lua_pushnumber(L, (lua_Number)when);
    return 2;
}

/* hmac_sha256(key, message) → 32 raw bytes */
static int l_hmac_sha256(lua_State *L)
{
    size_t klen, mlen;
    const char *key = check_secret(L, 1, &klen);
    const char *msg = luaL_checklstring(L, 2, &mlen);
    unsigned char mac[CRYPTO_MAC_BYTES];
    crypto_hmac_sha256(mac, key, klen, msg, mlen);
    lua_pushlstring(L, (const char *)mac, sizeof mac);
    return 1;
}

/* random_token([bytes = 32]) → base64url of that many random bytes */
static int l_random_token(lua_State *L)
{
    lua_Integer n = luaL_optinteger(L, 1, 32);
    if (n < 1 || n > CRYPTO_MAX_TOKEN_BYTES) return luaL_argerror(L, 1, "between 1 and 1024 bytes");
    room r;
    size_t size = crypto_b64_size((size_t)n);
    crypto_random_token(room_take(L, &r, size), size, (size_t)n);
    lua_pushstring(L, r.p);
    room_free(&r);
    return 1;
}

/* secure_compare(a, b) → boolean, in time that depends only on the lengths */
static int l_secure_compare(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lua_pushboolean(L, crypto_equal(a, alen, b, blen));
    return 1;
}

static int l_b64url_encode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    push_b64(L, s, len);
    return 1;
}

/* b64url_decode(s) → bytes | nil */
static int l_b64url_decode(lua_State *L)
{
    size_t len, n;
    const char *s = luaL_checklstring(L, 1, &len);
    room r;
    size_t size = crypto_unb64_size(len);
    if (crypto_b64_decode(room_take(L, &r, size), size, s, len, &n) == 0) lua_pushlstring(L, r.p, n);
    else lua_pushnil(L);
    room_free(&r);
    return 1;
}

/* ---- passwords ---- */

/* Pushes a worked job's results; returns their count. */
static int pw_push(lua_State *L, const crypto_pw *job)
{
    if (crypto_pw_is_verify(job)) {
        lua_pushboolean(L, crypto_pw_matched(job));
        return 1;
    }
    const char *hash = crypto_pw_hashed(job);
    if (!hash) {
        lua_pushnil(L);
        lua_pushliteral(L, "hash_password: out of memory");
        return 2;
    }
    lua_pushstring(L, hash);
    return 1;
}

/* On the loop once the pool is done with the job of the task waiting in ud. */
static void pw_done(crypto_pw *job, void *ud)
{
    lbk_task *t = ud;
    if (sched_waits_on(t, job)) {
        int n = pw_push(t->co, job);
        crypto_pw_free(job);
        sched_complete(t, n);
        return;
    }
    crypto_pw_free(job);
}

/* The waiting task gave up (its request was cancelled): the pool finishes the
 * job, which then frees itself. */
static void pw_undo(lbk_task *t)
{
    crypto_pw *job = t->wait_on;
    if (job) crypto_pw_abandon(job);
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
static int pw_call(lua_State *L, crypto_pw *job)
{
    if (!job) return luaL_error(L, "out of memory");
    lbk_task *t = pw_task(L);
    if (t) {
        int rc = sched_wait(L, t, job, -1, pw_undo, 0);
        if (sched_waits_on(t, job)) {   /* really waiting */
            if (crypto_pw_submit(job, t->gen->sched->loop, pw_done, t) == 0) return rc;
            /* no thread: undo the wait and work in place */
            sched_unwait(t);
            lua_settop(L, 0);
        } else {
            crypto_pw_free(job);    /* refused: the request was cancelled; rc values are pushed */
            return rc;
        }
    }
    crypto_pw_run(job);
    int n = pw_push(L, job);
    crypto_pw_free(job);
    return n;
}

/* hash_password(pw) → "$argon2id$v=19$m=...": interactive limits, a fresh salt */
static int l_hash_password(lua_State *L)
{
    size_t len;
    const char *pw = luaL_checklstring(L, 1, &len);
    return pw_call(L, crypto_pw_hash(pw, len));
}

/* verify_password(pw, hash) → boolean (false for a hash that is not argon2id) */
static int l_verify_password(lua_State *L)
{
    size_t len, hlen;
    const char *pw = luaL_checklstring(L, 1, &len);
    const char *hash = luaL_checklstring(L, 2, &hlen);
    if (!crypto_pw_hash_ok(hash, hlen)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    return pw_call(L, crypto_pw_verify(pw, len, hash, hlen));
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
    if (crypto_init() != 0) luaL_error(L, "libsodium failed to initialise");
    lua_pushlightuserdata(L, g);   /* every function's upvalue */
    luaL_setfuncs(L, crypto_functions, 1);
}
