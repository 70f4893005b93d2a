/* lubeck.core.crypto's functions (lua_crypto.c; the crypto is services/crypto.c). */
#ifndef LUBECK_LUA_CRYPTO_H
#define LUBECK_LUA_CRYPTO_H

#include <lua.h>

#include "gen.h"

/* Adds sign_value, verify_value, hmac_sha256, random_token, secure_compare,
 * b64url_encode, b64url_decode, hash_password, verify_password to the table
 * on top of the stack. g may be NULL (a bare Lua state, as in the unit tests):
 * the password functions then work in place. */
void crypto_open(lua_State *L, lbk_gen *g);

#endif
