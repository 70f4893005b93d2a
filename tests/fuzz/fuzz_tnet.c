/* libFuzzer target for tnet_parse (and tnet_write as its inverse): items are
 * walked recursively into dicts and lists, as the m2 header parser does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tnet.h"

#define MAX_DEPTH 32

static void walk(const char *buf, size_t len, int depth)
{
    size_t at = 0;
    while (at < len) {
        tnet_item it;
        long used = tnet_parse(buf + at, len - at, &it);
        if (used < 0)
            return;
        if ((size_t)used > len - at || it.payload.p < buf + at ||
            it.payload.p + it.payload.n + 1 > buf + at + (size_t)used)
            abort();

        /* An accepted item is canonical, so writing it back gives the same bytes. */
        char *copy = malloc(tnet_size(it.payload.n));
        if (!copy)
            return;
        size_t written = tnet_write(copy, it.type, it.payload.p, it.payload.n);
        if (written != (size_t)used || written != tnet_size(it.payload.n) ||
            memcmp(copy, buf + at, written) != 0)
            abort();
        free(copy);

        if ((it.type == TNET_DICT || it.type == TNET_LIST) && depth < MAX_DEPTH)
            walk(it.payload.p, it.payload.n, depth + 1);
        at += (size_t)used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading one byte too far is an ASan report. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    walk(buf, size, 0);
    free(buf);
    return 0;
}
