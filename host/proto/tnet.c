/* tnetstrings: "LEN:PAYLOAD" followed by a one-byte type tag. */
#include "tnet.h"
#include "decimal.h"

/* A length has at most 9 digits, so it always fits in a long and no frame can
 * claim more than ~1 GB. */
#define TNET_MAX_LEN_DIGITS 9

static int is_tnet_tag(char c)
{
    switch (c) {
    case TNET_STRING: case TNET_INT: case TNET_FLOAT: case TNET_BOOL:
    case TNET_NULL: case TNET_DICT: case TNET_LIST:
        return 1;
    default:
        return 0;
    }
}

long tnet_parse(const char *buf, size_t len, tnet_item *out)
{
    size_t i = 0, n = 0;

    while (i < len && buf[i] >= '0' && buf[i] <= '9') {
        if (i == TNET_MAX_LEN_DIGITS)
            return -1;
        n = n * 10 + (size_t)(buf[i] - '0');
        i++;
    }
    if (i == 0 || i == len || buf[i] != ':')
        return -1;
    if (i > 1 && buf[0] == '0')     /* "01:" is not canonical; the spec forbids it */
        return -1;
    i++;                            /* the ':' */

    /* Payload plus the tag byte must fit in what is left. */
    if (n >= len - i)
        return -1;
    if (!is_tnet_tag(buf[i + n]))
        return -1;

    out->type = buf[i + n];
    out->payload = slice_make(buf + i, n);
    return (long)(i + n + 1);
}

size_t tnet_size(size_t payload_len)
{
    return decimal_digits(payload_len) + 1 + payload_len + 1;
}

size_t tnet_write(char *out, char type, const char *payload, size_t len)
{
    size_t digits = decimal_write(out, len);
    out[digits] = ':';
    if (len)
        memcpy(out + digits + 1, payload, len);
    out[digits + 1 + len] = type;
    return digits + 1 + len + 1;
}
