/* libFuzzer target: the WebSocket bytes the host itself reads from a client,
 * the UTF-8 check of text messages and close reasons, checked against a
 * plain decoder written here, and the server frame header for any length. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "websocket.h"

/* A slow, obvious UTF-8 validator (RFC 3629) to compare with. */
static int reference_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, need;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return 0;
        if (n - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000)) return 0;   /* overlong */
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        i += need + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    assert(!websocket_utf8_valid((const char *)data, size) == !reference_utf8(data, size));
    if (size >= 9) {
        uint64_t len;
        memcpy(&len, data + 1, 8);
        unsigned char head[WS_MAX_HEADER];
        size_t n = websocket_frame_header(head, data[0] & 0x0F, len);
        assert(n == 2 || n == 4 || n == 10);
        assert((head[1] & 0x80) == 0);   /* a server never masks */
    }
    return 0;
}
