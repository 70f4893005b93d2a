/* The lubeck command line: main.c parses and dispatches; serve.c runs Mongrel2
 * beside the host; m2conf.c writes Mongrel2 configs; runner.c runs a host until a
 * signal stops it. */
#ifndef LUBECK_CLI_H
#define LUBECK_CLI_H

#include <stddef.h>

typedef struct cli_options {
    const char *app;
    const char *host;            /* serve: bind address */
    int port;
    int workers;
    int reload, debug;
    const char *run_dir;
    double drain;
    long max_body;
    char send_specs[2048];       /* run: ';'-separated */
    char recv_specs[2048];
    const char *sender_id;
} cli_options;

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
void m2conf_uuid(char out[37]);

/* Runs a host on the default loop until SIGINT/SIGTERM and the drain. Returns the
 * exit status. on_ready runs once the host is started (serve waits for
 * Mongrel2 there). */
int runner_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *ud), void (*on_stopped)(void *ud), void *ud);
/* Ends runner_run's loop early with this status (used when Mongrel2 dies). */
void runner_abort(int status);

int serve_main(cli_options *o);
int m2conf_main(cli_options *o);

#endif
