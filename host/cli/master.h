/* --workers N (master.c): a master process and its workers. */
#ifndef LUBECK_MASTER_H
#define LUBECK_MASTER_H

#include "cli.h"

/* Runs o->workers worker processes under a master: restarts, watchdog, bus,
 * reload, graceful stop. Same callbacks as runner_run. */
int master_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *ud), void (*on_stopped)(void *ud), void *ud);

#endif
