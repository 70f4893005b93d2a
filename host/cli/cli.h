/* The lubeck command line: main.c parses and dispatches; serve.c runs Mongrel2
 * beside the host; m2conf.c writes Mongrel2 configs; runner.c runs a host until a
 * signal stops it; master.c runs several as workers; watch.c is --reload. */
#ifndef LUBECK_CLI_H
#define LUBECK_CLI_H

#include <stddef.h>
#include <ev.h>

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
    const char *upload_dir;      /* Mongrel2's upload.temp_store folder (serve: RUN/tmp) */
    const char *m2_chroot;       /* run: the folder Mongrel2 chroots into, or NULL */
    double watchdog;             /* seconds without a heartbeat before a worker is killed */
    char probe_token[37];        /* serve: requests carrying it are answered by the host */
    int max_inflight, max_headers;   /* 0: the host's defaults */
    int max_body_given;          /* run: --max-body also bounds inline bodies in the host */
    double heartbeat;            /* ZeroMQ heartbeat interval to Mongrel2 (TTL 3x); 0: none */
    const char *redis;           /* --redis: channels cross hosts through it (wins over the app's) */
    int hup_stops;               /* serve: SIGHUP (its terminal closed) stops like SIGINT;
                                    SIGUSR1 reloads (run: SIGHUP and SIGUSR1 reload) */
    char relay_specs[2048];      /* run --relay: ';'-separated; requests come through these relays */
    const char *listen;          /* relay: where hosts connect */
    double relay_timeout;        /* relay: a host silent this long is gone */
} cli_options;

/* What a worker process gets from its master (NULL fields when alone). */
typedef struct worker_link {
    volatile double *heartbeat;  /* written twice a second: the master's watchdog reads it */
    const char *bus_in, *bus_out;
    struct shared_zone *shared;  /* lubeck.shared, made by the master before the fork */
    const char *reader;          /* the master's reader: requests come from it, not from Mongrel2 */
} worker_link;

/* --reload: calls changed(ud) after files under dir change. */
typedef struct app_watch app_watch;
app_watch *watch_start(struct ev_loop *loop, const char *dir, void (*changed)(void *ud), void *ud);
void watch_stop(app_watch *w);

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

/* Runs a host on the default loop until SIGINT/SIGTERM and the drain. Returns the
 * exit status. on_ready runs once the host is started (serve waits for
 * Mongrel2 there). */
int runner_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *ud), void (*on_stopped)(void *ud), void *ud);
/* The same, as one worker of a master (master.c). */
int runner_run_worker(const cli_options *o, const char *send, const char *recv,
                      const worker_link *link);
/* Runs o->workers worker processes under a master: restarts, watchdog, bus,
 * reload, graceful stop. Same callbacks as runner_run. */
int master_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *ud), void (*on_stopped)(void *ud), void *ud);
/* Ends runner_run's loop early with this status (used when Mongrel2 dies). */
void runner_abort(int status);
int runner_abort_status(void);

/* Loads the app in a throw-away state: 0, or -1 with "file:line: message".
 * redis_url (or NULL) receives the url channels cross hosts through: --redis,
 * else the app's redis option, else "". */
int app_check(const cli_options *o, char *err, size_t errlen, char *redis_url, size_t url_len);

int serve_main(cli_options *o);
/* lubeck relay --send SPEC --recv SPEC --listen SPEC. */
int relay_main(const cli_options *o);
int m2conf_main(cli_options *o);
int new_main(cli_options *o);

#endif
