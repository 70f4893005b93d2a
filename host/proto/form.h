/* Parsers for the name=value formats a request carries: query strings and
 * application/x-www-form-urlencoded bodies, and Cookie headers. They call back
 * once per pair, in order, with percent-decoded (urlencoded) or raw (cookie)
 * bytes. Decoded bytes are written to a caller-supplied scratch buffer. */
#ifndef LUBECK_FORM_H
#define LUBECK_FORM_H

#include "slice.h"

typedef int (*form_pair_fn)(void *ud, slice name, slice value);   /* nonzero stops */

/* "a=1&b=%20x&c&d=" → (a,1) (b, x) (c,"") (d,""). '+' decodes to a space, bad
 * %-escapes are kept literally, empty segments ("&&") are skipped. scratch must
 * hold at least len bytes; each pair gets its own part of it, so every slice
 * stays valid until scratch is reused. fn may be NULL (just count). Returns the
 * number of pairs seen, the one that stopped the walk included. */
int form_parse_urlencoded(const char *s, size_t len, char *scratch, form_pair_fn fn, void *ud);

/* Decodes percent-escapes (and '+' as space when plus_is_space) of s into out,
 * which must hold len bytes. Returns the decoded length. */
size_t form_url_decode(const char *s, size_t len, char *out, int plus_is_space);

/* "a=1; b=\"x y\"; c" → (a,1) (b,x y) ; pairs without '=' are skipped; names and
 * values are trimmed of spaces and tabs; a value in double quotes loses them.
 * No percent-decoding: slices point into s. An empty name ("=v") is reported
 * as it is. fn may be NULL. Returns the number of pairs seen, as above. */
int form_parse_cookies(const char *s, size_t len, form_pair_fn fn, void *ud);

#endif
