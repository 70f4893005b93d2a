/* The pattern matcher behind sock:receiveuntil: finds a byte pattern in what
 * has been read so far, and otherwise says how much of it can be handed out
 * already: every byte but a tail that the next bytes might complete into the
 * pattern. Pure functions of their arguments (fuzzed in tests/fuzz). */
#define _GNU_SOURCE
#include "cosocket.h"

#include <string.h>

long cosocket_until_find(const char *data, size_t len, const char *pat, size_t plen, size_t from,
                         size_t *safe)
{
    if (plen == 0) { *safe = 0; return 0; }
    if (from < len) {
        const char *hit = memmem(data + from, len - from, pat, plen);
        if (hit) {
            *safe = (size_t)(hit - data);
            return (long)(hit - data);
        }
    }
    /* No match: keep back the longest tail that is a start of the pattern. */
    size_t keep = plen - 1 < len ? plen - 1 : len;
    for (; keep > 0; keep--)
        if (memcmp(data + len - keep, pat, keep) == 0) break;
    *safe = len - keep;
    return -1;
}
