/* libFuzzer target for reader_peek_frame: the reader's look at each frame
 * from Mongrel2 (sender, connection id, notice, WebSocket handshake). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    slice sender;
    uint32_t id;
    int notice, handshake;
    const char *p = (const char *)data;
    if (reader_peek_frame(p, size, &sender, &id, &notice, &handshake) != 0) return 0;
    /* The sender is a non-empty prefix ending before the first space. */
    if (sender.p != p || sender.n == 0 || sender.n >= size || p[sender.n] != ' ') abort();
    if (memchr(p, ' ', sender.n)) abort();
    return 0;
}
