/* tnetstrings (https://tnetstrings.info): the encoding of Mongrel2's tnetstring
 * headers and of its control messages. Parsing never copies: items point into the
 * caller's buffer. */
#ifndef LUBECK_TNET_H
#define LUBECK_TNET_H

#include "slice.h"

/* Type tags as they appear on the wire. */
enum {
    TNET_STRING = ',', TNET_INT = '#', TNET_FLOAT = '^', TNET_BOOL = '!',
    TNET_NULL = '~', TNET_DICT = '}', TNET_LIST = ']'
};

typedef struct tnet_item {
    char type;       /* one of the TNET_* tags */
    slice payload;   /* the bytes between "LEN:" and the tag */
} tnet_item;

/* Reads one item at the start of buf[0..len). Returns the bytes it spans (prefix,
 * payload and tag), or -1 when the bytes are not a well-formed item: a missing or
 * over-long length (more than 9 digits), a leading zero, a length past the buffer,
 * or an unknown tag. Only the outer framing is checked, not nested payloads. */
long tnet_parse(const char *buf, size_t len, tnet_item *out);

/* Appends one item to out (which must have room: see tnet_size). Returns bytes written. */
size_t tnet_size(size_t payload_len);
size_t tnet_write(char *out, char type, const char *payload, size_t len);

#endif
