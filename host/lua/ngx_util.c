/* Digests, base64 and the request phase for lubeck.ngx: ngx.md5, ngx.sha1_bin,
 * ngx.hmac_sha1, ngx.crc32_*, ngx.encode_base64/decode_base64 (the standard
 * alphabet; lubeck's own cookies use base64url in crypto.c), ngx.get_phase.
 * Digests come from OpenSSL's libcrypto, already linked for TLS. */
#include "ngx_lib.h"

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int push_digest(lua_State *L, const EVP_MD *md)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, len, out, &n, md, NULL) != 1) return luaL_error(L, "digest failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

static int l_md5_bin(lua_State *L) { return push_digest(L, EVP_md5()); }
static int l_sha1_bin(lua_State *L) { return push_digest(L, EVP_sha1()); }

/* hmac_sha1(key, data) → the 20-byte MAC */
static int l_hmac_sha1(lua_State *L)
{
    size_t klen, dlen;
    const char *key = luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha1(), key, (int)klen, (const unsigned char *)data, dlen, out, &n))
        return luaL_error(L, "hmac_sha1 failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

/* crc32(data) → the CRC-32 (IEEE) as a number, as ngx.crc32_long gives it */
static int l_crc32(lua_State *L)
{
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    size_t len;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &len);
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    lua_pushnumber(L, (lua_Number)(crc ^ 0xFFFFFFFFu));
    return 1;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* encode_base64(data [, no_padding]) */
static int l_encode_base64(lua_State *L)
{
    size_t len;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &len);
    int pad = !lua_toboolean(L, 2);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        char q[4] = { B64[v >> 18], B64[(v >> 12) & 63], B64[(v >> 6) & 63], B64[v & 63] };
        luaL_addlstring(&b, q, 4);
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        char q[4] = { B64[v >> 18], B64[(v >> 12) & 63], i + 1 < len ? B64[(v >> 6) & 63] : '=', '=' };
        luaL_addlstring(&b, q, pad ? 4 : (i + 1 < len ? 3 : 2));
    }
    luaL_pushresult(&b);
    return 1;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* decode_base64(text) → data | nil (not base64). Padding may be left out. */
static int l_decode_base64(lua_State *L)
{
    size_t len;
    const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 1, &len);
    while (len > 0 && in[len - 1] == '=') len--;
    if (len % 4 == 1) {
        lua_pushnil(L);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            lua_pushnil(L);
            return 1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            luaL_addchar(&b, (char)((acc >> bits) & 0xFF));
        }
    }
    luaL_pushresult(&b);
    return 1;
}

/* in_request() → true inside a request's code (ngx.get_phase: "content") */
static int l_in_request(lua_State *L)
{
    lbk_gen *g = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushboolean(L, g->host->sched.current != NULL);
    return 1;
}

static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* lua-resty-string's to_hex calls nginx's ngx_hex_dump through the FFI
 * (ffi.C): the same function under that name, exported so ffi.C finds it. */
__attribute__((visibility("default")))
unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src, size_t len);

unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    while (len--) {
        *dst++ = (unsigned char)hex[*src >> 4];
        *dst++ = (unsigned char)hex[*src++ & 0xf];
    }
    return dst;
}

void ngx_util_open(lua_State *L, lbk_gen *g)
{
    static const luaL_Reg functions[] = {
        { "md5_bin", l_md5_bin }, { "sha1_bin", l_sha1_bin }, { "hmac_sha1", l_hmac_sha1 },
        { "crc32", l_crc32 }, { "encode_base64", l_encode_base64 },
        { "decode_base64", l_decode_base64 }, { "in_request", l_in_request }, { "pid", l_pid },
        { NULL, NULL }
    };
    lua_pushlightuserdata(L, g);
    luaL_setfuncs(L, functions, 1);
}
