/* lubeck serve APP_DIR (serve.c): the host with a Mongrel2 of its own. */
#ifndef LUBECK_SERVE_H
#define LUBECK_SERVE_H

#include "cli.h"

int serve_main(cli_options *o);

#endif
