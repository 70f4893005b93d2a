/* lubeck's command line (docs/reference.md, Commands). Exit status: 0 ok, 1 app
 * or runtime error, 2 usage error with a one-line reason.
 *
 * Two tables drive it: COMMANDS (name, usage line, what it does, an example)
 * and OPTIONS (name, value, the commands that take it, help, a setter). A new
 * option is one row in OPTIONS and a setter; a new command one row in
 * COMMANDS. `lubeck --help` and `lubeck COMMAND --help` are printed from them. */
#include "cli.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "host.h"
#include "lubeck.h"
#include "redis_bus.h"

enum {
    CMD_SERVE = 1 << 0,
    CMD_RUN = 1 << 1,
    CMD_CHECK = 1 << 2,
    CMD_M2CONF = 1 << 3,
    CMD_NEW = 1 << 4,
    CMD_RELAY = 1 << 5,
};

typedef struct command {
    const char *name;
    int bit;
    const char *usage;           /* after "lubeck NAME " */
    const char *summary;
    const char *example;
} command;

static const command COMMANDS[] = {
    { "serve", CMD_SERVE, "APP_DIR [options]",
      "Serves the app through a Mongrel2 of its own on one machine: writes its config into\n"
      "the run folder (APP_DIR/.lubeck/ unless --run-dir), starts and supervises mongrel2,\n"
      "and prints the URL once it answers. Ctrl-C, SIGTERM or SIGHUP (the terminal closed)\n"
      "stop it; SIGUSR1 reloads the app.",
      "lubeck serve apps/hello --port 8080 --reload" },
    { "run", CMD_RUN, "APP_DIR --send SPEC --recv SPEC [--send SPEC --recv SPEC ...] [options]",
      "Production: runs the app against Mongrel2 servers you run yourself (each --send/--recv\n"
      "pair is one Handler's send_spec/recv_spec). SIGINT/SIGTERM stop it after a drain;\n"
      "SIGHUP or SIGUSR1 reloads the app. docs/deploy.md shows the whole setup.",
      "lubeck run apps/hello --send tcp://127.0.0.1:9997 --recv tcp://127.0.0.1:9996" },
    { "relay", CMD_RELAY, "--send SPEC --recv SPEC [--send SPEC --recv SPEC ...] --listen tcp://ADDR:PORT [options]",
      "Runs beside a Mongrel2 as the single reader of its requests, for hosts that join with\n"
      "`lubeck run APP_DIR --relay tcp://ADDR:PORT`: each connection's messages go to one host,\n"
      "in order, plain requests to the least busy; it answers 502 itself for what a host held\n"
      "when it died or went silent. Replies go from the hosts straight to Mongrel2.\n"
      "See docs/scaling.md.",
      "lubeck relay --send tcp://127.0.0.1:9997 --recv tcp://127.0.0.1:9996 --listen tcp://0.0.0.0:9990" },
    { "check", CMD_CHECK, "APP_DIR",
      "Loads the app, compiles its routes and templates, and reports problems as file:line\n"
      "(exit 1), or says it is clean (exit 0).",
      "lubeck check apps/hello" },
    { "m2conf", CMD_M2CONF, "APP_DIR [options]",
      "Prints the Mongrel2 config that serve uses for the app (send/recv specs default to\n"
      "tcp://127.0.0.1:9997 and :9996), creates the folders it names, and says on stderr\n"
      "how to load it, start Mongrel2 and connect `lubeck run`. See docs/deploy.md.",
      "lubeck m2conf apps/hello --port 8080 > mongrel2.conf" },
    { "new", CMD_NEW, "NAME",
      "Makes a new app folder NAME: app.lua, templates/ with a layout, static/, spec/ with a\n"
      "test-client spec, .gitignore and a README.",
      "lubeck new blog && lubeck serve blog" },
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* ---- option setters: 0, or 2 after saying what is wrong ------------------------------ */

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "lubeck: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see lubeck --help)\n");
    return 2;
}

static int number(const char *name, const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < min || v > max) {
        fprintf(stderr, "lubeck: bad %s: %s (a number from %g to %g)\n", name, s, min, max);
        return 2;
    }
    *out = v;
    return 0;
}

static int append_spec(char *list, size_t len, const char *name, const char *spec)
{
    size_t used = strlen(list);
    int n = snprintf(list + used, len - used, "%s%s", used ? ";" : "", spec);
    if (n < 0 || (size_t)n >= len - used) {
        list[used] = 0;
        fprintf(stderr, "lubeck: too many %s: %s\n", name, spec);
        return 2;
    }
    return 0;
}

#define SETTER(fn) static int fn(cli_options *o, const char *name, const char *v)

SETTER(set_reload) { o->reload = 1; return 0; }
SETTER(set_debug) { o->debug = 1; return 0; }
SETTER(set_host) { o->host = v; return 0; }
SETTER(set_run_dir) { o->run_dir = v; return 0; }
SETTER(set_sender_id) { o->sender_id = v; return 0; }
SETTER(set_upload_dir) { o->upload_dir = v; return 0; }
SETTER(set_m2_chroot) { o->m2_chroot = v; return 0; }
SETTER(set_redis)
{
    redis_url parsed;
    char why[512];
    if (redis_url_parse(v, &parsed, why, sizeof why)) return usage_error("bad --redis: %s", why);
    o->redis = v;
    return 0;
}
SETTER(set_send) { return append_spec(o->send_specs, sizeof o->send_specs, name, v); }
SETTER(set_recv) { return append_spec(o->recv_specs, sizeof o->recv_specs, name, v); }
SETTER(set_listen) { o->listen = v; return 0; }
SETTER(set_relay_timeout) { return number(name, v, 0.5, 3600, &o->relay_timeout); }
SETTER(set_relay)
{
    if (strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6))
        return usage_error("bad --relay: %s (a tcp:// or ipc:// address)", v);
    return append_spec(o->relay_specs, sizeof o->relay_specs, name, v);
}
SETTER(set_port)
{
    double n;
    if (number(name, v, 1, 65535, &n)) return 2;
    o->port = (int)n;
    return 0;
}
SETTER(set_workers)
{
    double n = 0;
    if (!strcmp(v, "auto")) n = (double)sysconf(_SC_NPROCESSORS_ONLN);
    else if (number(name, v, 1, 1024, &n)) return 2;
    o->workers = (int)n;
    return 0;
}
SETTER(set_watchdog) { return number(name, v, 0.5, 86400, &o->watchdog); }
SETTER(set_drain) { return number(name, v, 0, 86400, &o->drain); }
SETTER(set_heartbeat)
{
    double n;
    if (number(name, v, 0, 3600, &n)) return 2;
    if (n > 0 && n < 0.01) return usage_error("bad --heartbeat: %s (0, or at least 0.01 seconds)", v);
    o->heartbeat = n;
    return 0;
}
SETTER(set_max_body)
{
    double n;
    if (number(name, v, 0, 1e12, &n)) return 2;
    o->max_body = (long)n;
    o->max_body_given = 1;
    return 0;
}
SETTER(set_max_inflight)
{
    double n;
    if (number(name, v, 1, 1e7, &n)) return 2;
    o->max_inflight = (int)n;
    return 0;
}
SETTER(set_max_headers)
{
    double n;
    if (number(name, v, 1, 1e5, &n)) return 2;
    o->max_headers = (int)n;
    return 0;
}

typedef struct option {
    const char *name;
    const char *value;           /* its placeholder, or NULL for a flag */
    int commands;                /* CMD_* bits */
    const char *help;
    int (*set)(cli_options *o, const char *name, const char *value);
} option;

#define HOSTS (CMD_SERVE | CMD_RUN)
static const option OPTIONS[] = {
    { "--host", "ADDR", CMD_SERVE | CMD_M2CONF, "address Mongrel2 listens on (127.0.0.1)", set_host },
    { "--port", "N", CMD_SERVE | CMD_M2CONF, "port Mongrel2 listens on (6767)", set_port },
    { "--run-dir", "DIR", CMD_SERVE | CMD_M2CONF, "run folder for config, logs, pid, uploads (APP_DIR/.lubeck)", set_run_dir },
    { "--send", "SPEC", CMD_RUN | CMD_M2CONF | CMD_RELAY, "a Handler's send_spec (ZeroMQ address Mongrel2 binds)", set_send },
    { "--recv", "SPEC", CMD_RUN | CMD_M2CONF | CMD_RELAY, "the same Handler's recv_spec", set_recv },
    { "--relay", "tcp://ADDR:PORT", CMD_RUN, "join the hosts behind this `lubeck relay` instead of --send/--recv", set_relay },
    { "--listen", "tcp://ADDR:PORT", CMD_RELAY, "where hosts connect (run --relay)", set_listen },
    { "--timeout", "SECONDS", CMD_RELAY, "a host silent this long is gone: what it held gets 502 (3)", set_relay_timeout },
    { "--sender-id", "ID", CMD_RUN, "this host's ZeroMQ identity (a fresh UUID)", set_sender_id },
    { "--workers", "N|auto", HOSTS, "worker processes under a master (1)", set_workers },
    { "--reload", NULL, HOSTS, "reload when a Lua module or template changes", set_reload },
    { "--debug", NULL, HOSTS | CMD_CHECK, "tracebacks in error pages", set_debug },
    { "--drain", "SECONDS", HOSTS, "how long a stop waits for requests in flight (10); new ones get 503", set_drain },
    { "--max-body", "BYTES", HOSTS | CMD_M2CONF, "larger bodies arrive as Mongrel2 uploads (1048576)", set_max_body },
    { "--watchdog", "SECONDS", HOSTS, "a worker silent this long is killed (10)", set_watchdog },
    { "--heartbeat", "SECONDS", HOSTS | CMD_RELAY, "ZeroMQ heartbeats to Mongrel2; a peer silent 3x as long is dropped (1; 0: none)", set_heartbeat },
    { "--max-inflight", "N", HOSTS, "requests one host runs at once before answering 503", set_max_inflight },
    { "--max-headers", "N", HOSTS, "headers a request may carry", set_max_headers },
    { "--upload-dir", "DIR", CMD_RUN, "Mongrel2's upload.temp_store folder (without it, uploads get 400)", set_upload_dir },
    { "--m2-chroot", "DIR", CMD_RUN, "Mongrel2's Server.chroot, when it runs as root", set_m2_chroot },
    { "--redis", "URL", HOSTS, "redis://HOST:PORT/DB: lubeck.channel publishes reach every host joined to it", set_redis },
};
#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

/* ---- help --------------------------------------------------------------------------- */

static void print_overview(FILE *f)
{
    fprintf(f, "usage: lubeck COMMAND ...   (lubeck COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  lubeck %s %s\n", COMMANDS[i].name, COMMANDS[i].usage);
    fprintf(f, "  lubeck --version | -v\n  lubeck --help | -h\n\n"
               "Start with `lubeck new NAME`, then `lubeck serve NAME`.\n");
}

static void print_command_help(const command *c)
{
    printf("usage: lubeck %s %s\n\n%s\n", c->name, c->usage, c->summary);
    int any = 0;
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *op = &OPTIONS[i];
        if (!(op->commands & c->bit)) continue;
        if (!any++) printf("\noptions:\n");
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", op->name, op->value ? " " : "", op->value ? op->value : "");
        printf("  %-24s %s\n", left, op->help);
    }
    printf("  %-24s %s\n", "-h, --help", "this help");
    printf("\nexample:\n  %s\n", c->example);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(COMMANDS[i].name, name)) return &COMMANDS[i];
    return NULL;
}

static const option *find_option(const char *name)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (!strcmp(OPTIONS[i].name, name)) return &OPTIONS[i];
    return NULL;
}

/* Parses the options after "COMMAND APP_DIR". Returns 0 or an exit status. */
static int parse_options(const command *c, int argc, char **argv, cli_options *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const option *op = find_option(a);
        if (!op) {
            if (a[0] == '-') fprintf(stderr, "lubeck: unknown option %s for %s (see lubeck %s --help)\n", a, c->name, c->name);
            else fprintf(stderr, "lubeck: unexpected argument '%s' (see lubeck %s --help)\n", a, c->name);
            return 2;
        }
        if (!(op->commands & c->bit)) {
            fprintf(stderr, "lubeck: %s takes no %s option (see lubeck %s --help)\n", c->name, a, c->name);
            return 2;
        }
        const char *v = NULL;
        if (op->value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lubeck: %s needs a value: %s %s\n", a, a, op->value);
                return 2;
            }
            v = argv[++i];
        }
        int rc = op->set(o, a, v);
        if (rc) return rc;
    }
    if (c->bit == CMD_RUN && o->relay_specs[0]) {
        if (o->send_specs[0] || o->recv_specs[0]) {
            fprintf(stderr, "lubeck: run takes --relay or --send/--recv, not both (see lubeck run --help)\n");
            return 2;
        }
    } else if (c->bit & (CMD_RUN | CMD_RELAY)) {
        int nsend = 0, nrecv = 0;
        for (const char *p = o->send_specs; *p; p++) nsend += *p == ';';
        for (const char *p = o->recv_specs; *p; p++) nrecv += *p == ';';
        if (!o->send_specs[0] || !o->recv_specs[0] || nsend != nrecv) {
            fprintf(stderr, "lubeck: %s needs --send and --recv in pairs%s (see lubeck %s --help)\n",
                    c->name, c->bit == CMD_RUN ? " (or --relay)" : "", c->name);
            return 2;
        }
    }
    if (c->bit == CMD_RELAY && !o->listen) {
        fprintf(stderr, "lubeck: relay needs --listen tcp://ADDR:PORT (see lubeck relay --help)\n");
        return 2;
    }
    if (o->m2_chroot && !o->upload_dir) return usage_error("%s goes with run --upload-dir", "--m2-chroot");
    return 0;
}

/* ---- check ---------------------------------------------------------------------------- */

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
static int check_main(cli_options *o)
{
    char err[4096];
    if (app_check(o, err, sizeof err, NULL, 0) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%s)\n", o->app, err);
    return 0;
}

static int has_help_flag(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* Access lines are written in batches (log.h): give them room. (glibc
     * ignores the size unless it is handed the buffer.) */
    static char stdout_buffer[1 << 16];
    setvbuf(stdout, stdout_buffer, isatty(1) ? _IOLBF : _IOFBF, sizeof stdout_buffer);
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "-v") || !strcmp(name, "version")) {
        printf("lubeck %s\n", LUBECK_VERSION);
        return 0;
    }
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        const command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (c) print_command_help(c);
        else print_overview(stdout);
        return 0;
    }
    const command *c = find_command(name);
    if (!c) {
        if (name[0] == '-') return usage_error("unknown option %s", name);
        return usage_error("unknown command '%s'", name);
    }
    if (has_help_flag(argc, argv)) {
        print_command_help(c);
        return 0;
    }
    if (argc < 3 || argv[2][0] == '-') {
        if (c->bit == CMD_RELAY) {   /* no folder: its options start here */
            cli_options o = { .heartbeat = 1, .relay_timeout = 3 };
            int rc = parse_options(c, argc - 2, argv + 2, &o);
            return rc ? rc : relay_main(&o);
        }
        fprintf(stderr, "lubeck: %s needs %s (see lubeck %s --help)\n", c->name,
                c->bit == CMD_NEW ? "a NAME" : "an APP_DIR", c->name);
        return 2;
    }

    cli_options o = {
        .app = argv[2], .host = "127.0.0.1", .port = 6767, .workers = 1,
        .drain = 10, .max_body = 1 << 20, .watchdog = 10, .heartbeat = 1,
    };
    int rc = parse_options(c, argc - 3, argv + 3, &o);
    if (rc) return rc;
    switch (c->bit) {
    case CMD_CHECK: return check_main(&o);
    case CMD_M2CONF: return m2conf_main(&o);
    case CMD_NEW: return new_main(&o);
    case CMD_SERVE: return serve_main(&o);
    default: break;
    }
    if (o.workers > 1) return master_run(&o, o.send_specs, o.recv_specs, NULL, NULL, NULL);
    return runner_run(&o, o.send_specs, o.recv_specs, NULL, NULL, NULL);
}
