/* Loading an app without serving it (check.c): `lubeck check`, and the master's
 * one load before it forks its workers. */
#ifndef LUBECK_CHECK_H
#define LUBECK_CHECK_H

#include <stddef.h>

#include "cli.h"

/* Loads the app in a throw-away state: 0, or -1 with "file:line: message".
 * redis_url (or NULL) receives the url channels cross hosts through: --redis,
 * else the app's redis option, else "". */
int app_check(const cli_options *o, char *err, size_t errlen, char *redis_url, size_t url_len);
/* lubeck check APP_DIR: file:line errors, exit 1; or "APP: ok (N routes)". */
int check_main(cli_options *o);

#endif
