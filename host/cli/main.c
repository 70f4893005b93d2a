/* lubeck's command line (API.md §1). Exit status: 0 ok, 1 app or runtime error,
 * 2 usage error with a one-line reason. */
#include "cli.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "lubeck.h"

static const char USAGE[] =
    "usage: lubeck serve APP_DIR [--host 127.0.0.1] [--port 6767] [--workers N|auto] [--reload]\n"
    "                            [--debug] [--run-dir DIR] [--drain SECONDS] [--max-body BYTES]\n"
    "                            [--watchdog SECONDS] [--max-inflight N] [--max-headers N]\n"
    "       lubeck run APP_DIR --send SPEC --recv SPEC [--send SPEC --recv SPEC ...]\n"
    "                          [--sender-id ID] [--workers N|auto] [--reload] [--debug] [--drain SECONDS]\n"
    "                          [--watchdog SECONDS] [--max-body BYTES] [--max-inflight N]\n"
    "                          [--max-headers N] [--upload-dir DIR]   (Mongrel2's upload.temp_store\n"
    "                          folder; without it, async uploads are refused with 400)\n"
    "                          [--m2-chroot DIR]   (Mongrel2's Server.chroot when it runs as root:\n"
    "                          the upload paths it names are inside it)\n"
    "       lubeck run APP_DIR --relay tcp://ADDR:PORT [--relay ...] [same options]\n"
    "                          (join the pool through relays instead of connecting to Mongrel2)\n"
    "       lubeck relay --send SPEC --recv SPEC --listen tcp://ADDR:PORT [--timeout SECONDS]\n"
    "                          (beside one Mongrel2: the single reader of its requests)\n"
    "       lubeck check APP_DIR\n"
    "       lubeck m2conf APP_DIR [--port P] [--host H]\n"
    "       lubeck --version | --help\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "lubeck: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see lubeck --help)\n");
    return 2;
}

static int append_spec(char *list, size_t len, const char *spec)
{
    size_t used = strlen(list);
    int n = snprintf(list + used, len - used, "%s%s", used ? ";" : "", spec);
    return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

static int parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Parses the options after "COMMAND APP_DIR". Returns 0 or an exit status. */
static int parse_options(const char *cmd, int argc, char **argv, cli_options *o)
{
    int nsend = 0, nrecv = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = strcmp(a, "--reload") && strcmp(a, "--debug");
        if (takes_value && !v) return usage_error("%s needs a value", a);
        double num;
        if (!strcmp(a, "--reload")) o->reload = 1;
        else if (!strcmp(a, "--debug")) o->debug = 1;
        else if (!strcmp(a, "--host")) o->host = v;
        else if (!strcmp(a, "--port")) {
            if (parse_number(v, 1, 65535, &num)) return usage_error("bad --port: %s", v);
            o->port = (int)num;
        } else if (!strcmp(a, "--workers")) {
            if (!strcmp(v, "auto")) o->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
            else if (parse_number(v, 1, 1024, &num)) return usage_error("bad --workers: %s", v);
            else o->workers = (int)num;
        } else if (!strcmp(a, "--watchdog")) {
            if (parse_number(v, 0.5, 86400, &num)) return usage_error("bad --watchdog: %s", v);
            o->watchdog = num;
        } else if (!strcmp(a, "--drain")) {
            if (parse_number(v, 0, 86400, &num)) return usage_error("bad --drain: %s", v);
            o->drain = num;
        } else if (!strcmp(a, "--max-body")) {
            if (parse_number(v, 0, 1e12, &num)) return usage_error("bad --max-body: %s", v);
            o->max_body = (long)num;
            o->max_body_given = 1;
        } else if (!strcmp(a, "--max-inflight")) {
            if (parse_number(v, 1, 1e7, &num)) return usage_error("bad --max-inflight: %s", v);
            o->max_inflight = (int)num;
        } else if (!strcmp(a, "--max-headers")) {
            if (parse_number(v, 1, 1e5, &num)) return usage_error("bad --max-headers: %s", v);
            o->max_headers = (int)num;
        } else if (!strcmp(a, "--run-dir")) o->run_dir = v;
        else if (!strcmp(a, "--sender-id")) o->sender_id = v;
        else if (!strcmp(a, "--upload-dir")) o->upload_dir = v;
        else if (!strcmp(a, "--m2-chroot")) o->m2_chroot = v;
        else if (!strcmp(a, "--send")) {
            if (append_spec(o->send_specs, sizeof o->send_specs, v)) return usage_error("too many --send: %s", v);
            nsend++;
        } else if (!strcmp(a, "--relay")) {
            if (strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6))
                return usage_error("bad --relay: %s (a tcp:// or ipc:// address)", v);
            if (append_spec(o->relay_specs, sizeof o->relay_specs, v)) return usage_error("too many --relay: %s", v);
        } else if (!strcmp(a, "--recv")) {
            if (append_spec(o->recv_specs, sizeof o->recv_specs, v)) return usage_error("too many --recv: %s", v);
            nrecv++;
        } else return usage_error("unknown option %s", a);
        if (takes_value) i++;
    }
    if (!strcmp(cmd, "run") && o->relay_specs[0] && nsend + nrecv > 0)
        return usage_error("%s takes --relay or --send/--recv, not both", "run");
    if (!strcmp(cmd, "run") && !o->relay_specs[0] && (nsend == 0 || nsend != nrecv))
        return usage_error("%s needs --send and --recv in pairs (or --relay)", "run");
    if (strcmp(cmd, "run") && o->relay_specs[0]) return usage_error("%s: --relay goes with run", cmd);
    if (o->m2_chroot && !o->upload_dir) return usage_error("%s goes with run --upload-dir", "--m2-chroot");
    return 0;
}

int app_check(const cli_options *o, char *err, size_t errlen)
{
    lubeck_config cfg = { .app = o->app, .debug = o->debug };
    lubeck *h = lubeck_new(EV_DEFAULT, &cfg, err, errlen);
    if (!h) return -1;
    h->checking = 1;
    lbk_gen *g = gen_load(h, o->app, err, errlen);
    if (g) {
        snprintf(err, errlen, "%d routes", router_count(g->router));
        gen_release(g);
    }
    lubeck_free(h);
    return g ? 0 : -1;
}

/* Loads the app as serve would, without sockets: file:line errors, exit 1. */
static int check_main(cli_options *o)
{
    char err[4096];
    if (app_check(o, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: ok (%s)\n", o->app, err);
    return 0;
}

int main(int argc, char **argv)
{
    /* Access lines are written in batches (log.h): give them room. (glibc
     * ignores the size unless it is handed the buffer.) */
    static char stdout_buffer[1 << 16];
    setvbuf(stdout, stdout_buffer, isatty(1) ? _IOLBF : _IOFBF, sizeof stdout_buffer);
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("lubeck %s\n", LUBECK_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "help") || !strcmp(cmd, "-h")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "relay")) return relay_main(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") && strcmp(cmd, "run") && strcmp(cmd, "check") && strcmp(cmd, "m2conf"))
        return usage_error("unknown command '%s'", cmd);
    if (argc < 3 || argv[2][0] == '-') return usage_error("%s needs an APP_DIR", cmd);

    cli_options o = {
        .app = argv[2], .host = "127.0.0.1", .port = 6767, .workers = 1,
        .drain = 10, .max_body = 1 << 20, .watchdog = 10,
    };
    int rc = parse_options(cmd, argc - 3, argv + 3, &o);
    if (rc) return rc;
    if (!strcmp(cmd, "check")) return check_main(&o);
    if (!strcmp(cmd, "m2conf")) return m2conf_main(&o);
    if (!strcmp(cmd, "serve")) return serve_main(&o);
    if (o.workers > 1) return master_run(&o, o.send_specs, o.recv_specs, NULL, NULL, NULL);
    return runner_run(&o, o.send_specs, o.recv_specs, NULL, NULL, NULL);
}
