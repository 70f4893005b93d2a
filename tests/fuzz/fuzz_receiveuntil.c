/* libFuzzer target for cosocket_until_find, receiveuntil's matcher. The input
 * is split into a pattern (first byte: its length) and a stream, fed in pieces
 * the way reads arrive (the second byte seeds the piece sizes); every answer
 * is checked against a plain search: the first match is found, no byte handed
 * out as "safe" can belong to a match, and what is kept back is a real prefix. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cosocket.h"

static long naive_find(const char *d, size_t len, const char *p, size_t plen)
{
    for (size_t i = 0; i + plen <= len; i++)
        if (memcmp(d + i, p, plen) == 0) return (long)i;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    size_t plen = 1 + data[0] % 16;
    unsigned seed = data[1];
    data += 2;
    size -= 2;
    if (plen > size) return 0;
    const char *pat = (const char *)data;
    const char *stream = (const char *)data + plen;
    size_t total = size - plen;

    size_t have = 0, from = 0;
    while (have < total) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 7;
        have = have + piece < total ? have + piece : total;
        size_t safe = 0;
        long at = cosocket_until_find(stream, have, pat, plen, from, &safe);
        long expect = naive_find(stream, have, pat, plen);
        if (at != expect) abort();
        if (at >= 0) {
            if (safe != (size_t)at) abort();
            return 0;
        }
        if (safe > have || safe < from) abort();
        /* the kept tail is a prefix of the pattern and shorter than it */
        size_t keep = have - safe;
        if (keep >= plen || memcmp(stream + safe, pat, keep) != 0) abort();
        from = safe;   /* as try_until does */
    }
    return 0;
}
