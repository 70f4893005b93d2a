/* libFuzzer target for the urlencoded, percent-decoding and Cookie parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"

typedef struct bounds {
    const char *lo, *hi;
} bounds;

static int check_pair(void *ud, slice name, slice value)
{
    bounds *b = ud;
    if (!name.p || !value.p || name.p < b->lo || name.p + name.n > b->hi ||
        value.p < b->lo || value.p + value.n > b->hi)
        abort();
    return 0;
}

static int check_cookie(void *ud, slice name, slice value)
{
    check_pair(ud, name, value);
    /* Names and values come back trimmed. */
    if (name.n && (name.p[0] == ' ' || name.p[0] == '\t' ||
                   name.p[name.n - 1] == ' ' || name.p[name.n - 1] == '\t'))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size buffers throughout, so ASan sees any overrun. */
    char *in = malloc(size ? size : 1), *scratch = malloc(size ? size : 1);
    if (!in || !scratch)
        goto done;
    memcpy(in, data, size);

    if (form_url_decode(in, size, scratch, 0) > size ||
        form_url_decode(in, size, scratch, 1) > size)
        abort();

    bounds in_scratch = { scratch, scratch + size };
    int pairs = form_parse_urlencoded(in, size, scratch, check_pair, &in_scratch);
    if (pairs < 0 || (size_t)pairs > size)
        abort();

    bounds in_input = { in, in + size };
    pairs = form_parse_cookies(in, size, check_cookie, &in_input);
    if (pairs < 0 || (size_t)pairs > size)
        abort();

done:
    free(in);
    free(scratch);
    return 0;
}
