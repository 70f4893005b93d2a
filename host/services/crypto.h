/* The crypto lubeck.core offers the Lua side (libsodium): signed values for
 * secure cookies and sessions (HMAC-SHA256 over name, value and timestamp,
 * checked in constant time), argon2id password hashes, random tokens.
 *
 * Signed value format (what a secure cookie holds):
 *     B64(value) "|" TIMESTAMP "|" B64(HMAC-SHA256(secret, name "|" B64(value) "|" TIMESTAMP))
 * B64 is base64url without padding; TIMESTAMP is decimal Unix seconds. */
#ifndef LUBECK_CRYPTO_H
#define LUBECK_CRYPTO_H

#include <lua.h>

#include "gen.h"

/* Adds sign_value, verify_value, hmac_sha256, random_token, secure_compare,
 * hash_password, verify_password to the table on top of the stack. g may be
 * NULL (a bare Lua state, as in the unit tests). */
void crypto_open(lua_State *L, lbk_gen *g);

#endif
