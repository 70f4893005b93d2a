/* Unsigned numbers as decimal text, written straight into a caller's buffer:
 * the frame, tnetstring, reply-head and access-line writers all need it, and
 * printf would cost more than the rest of their work. */
#ifndef LUBECK_DECIMAL_H
#define LUBECK_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

static inline size_t decimal_digits(uint64_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* Writes v at out (no NUL); returns how many characters that took. */
static inline size_t decimal_write(char *out, uint64_t v)
{
    size_t n = decimal_digits(v), at = n;
    do {
        out[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return n;
}

#endif
