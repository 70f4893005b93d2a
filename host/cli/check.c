/* lubeck check: the app loaded in a throw-away host with no sockets, as serve
 * and run would load it, so that its errors show as file:line before anything
 * starts. The master loads it this way once before it forks its workers. */
#include "check.h"

#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "host.h"
#include "lubeck.h"

int app_check(const cli_options *o, char *err, size_t errlen, char *redis_url, size_t url_len)
{
    lubeck_config cfg = { .app = o->app, .debug = o->debug };
    lubeck *h = lubeck_new(EV_DEFAULT, &cfg, err, errlen);
    if (!h) return -1;
    h->checking = 1;
    if (o->redis) channels_set_redis(h->channels, o->redis, err, errlen);   /* (checked with the options) */
    lbk_gen *g = gen_load(h, o->app, err, errlen);
    if (g) {
        snprintf(err, errlen, "%d routes", router_count(g->router));
        gen_release(g);
    }
    const char *url = channels_redis_url(h->channels);
    if (redis_url) snprintf(redis_url, url_len, "%s", url ? url : "");
    lubeck_free(h);
    /* file:line says where; the loader's own frames would only hide it. */
    char *trace = strstr(err, "\nstack traceback:");
    if (!g && trace) *trace = 0;
    return g ? 0 : -1;
}

/* Loads the app as serve would, without sockets: file:line errors, exit 1. */
int check_main(cli_options *o)
{
    char err[4096];
    if (app_check(o, err, sizeof err, NULL, 0) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%s)\n", o->app, err);
    return 0;
}
