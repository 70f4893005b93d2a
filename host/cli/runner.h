/* One host on the default loop until a signal and its drain (runner.c): alone,
 * or as one worker of a master. */
#ifndef LUBECK_RUNNER_H
#define LUBECK_RUNNER_H

#include "cli.h"

/* What a worker process gets from its master (NULL fields when alone). */
typedef struct worker_link {
    volatile double *heartbeat;  /* written twice a second: the master's watchdog reads it */
    const char *bus_in, *bus_out;
    struct shared_zone *shared;  /* lubeck.shared, made by the master before the fork */
    const char *reader;          /* the master's reader: requests come from it, not from Mongrel2 */
} worker_link;

/* Runs a host on the default loop until SIGINT/SIGTERM and the drain. Returns the
 * exit status. on_ready runs once the host is started (serve waits for
 * Mongrel2 there). */
int runner_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *ud), void (*on_stopped)(void *ud), void *ud);
/* The same, as one worker of a master (master.c). */
int runner_run_worker(const cli_options *o, const char *send, const char *recv,
                      const worker_link *link);
/* Ends the default loop early with this status (used when Mongrel2 dies): the
 * runner's loop, or the master's, which returns runner_abort_status(). */
void runner_abort(int status);
int runner_abort_status(void);

#endif
