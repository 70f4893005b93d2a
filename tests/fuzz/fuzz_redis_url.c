/* libFuzzer target for redis_url_parse (--redis and the app's redis option):
 * whatever it accepts has a host, a port in range and NUL-terminated fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_bus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);   /* exact size: reading past the NUL is an ASan report */
    if (!url) return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    redis_url u;
    char err[64];
    if (redis_url_parse(url, &u, err, sizeof err) == 0) {
        if (!u.host[0] || u.port < 1 || u.port > 65535 || u.db < 0) abort();
        if (!memchr(u.host, 0, sizeof u.host) || !memchr(u.password, 0, sizeof u.password)) abort();
    } else if (!memchr(err, 0, sizeof err)) {
        abort();
    }
    free(url);
    return 0;
}
