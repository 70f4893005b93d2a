/* Mongrel2 configs (m2conf.c): the text serve loads, and `lubeck m2conf`. */
#ifndef LUBECK_M2CONF_H
#define LUBECK_M2CONF_H

#include <stddef.h>

#include "cli.h"

typedef struct m2conf_params {
    const char *app_dir;         /* absolute */
    const char *run_dir;         /* absolute */
    const char *host;
    int port;
    const char *send_spec, *recv_spec;
    const char *handler_uuid, *server_uuid;
    long max_body;
} m2conf_params;

/* Writes the Mongrel2 config text for p into buf; returns its length, or -1 if
 * it does not fit. */
int m2conf_write(char *buf, size_t len, const m2conf_params *p);
/* lubeck m2conf APP_DIR: writes the run folder's config and says how to load it. */
int m2conf_main(cli_options *o);

#endif
