/* The lubeck command line's options, as main.c parses them; every command
 * takes its part of them. The files call each other one way only: main.c
 * dispatches to serve.c, check.c, m2conf.c, new.c, relay.c, master.c and
 * runner.c; serve.c runs Mongrel2 (m2conf.c) beside master.c or runner.c;
 * master.c forks runner.c's hosts after check.c has loaded the app once;
 * runner.c and master.c watch the app with watch.c. Each file's header offers
 * what the files above it call. */
#ifndef LUBECK_CLI_H
#define LUBECK_CLI_H

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

#endif
