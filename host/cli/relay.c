/* lubeck relay: runs beside one Mongrel2 as the single reader of its requests
 * (reader.h), for hosts that join with `lubeck run APP --relay`. It routes;
 * it never answers a request itself, except 502 for what a host held when it
 * died or went silent (heartbeats: --timeout seconds, default 3). Replies go
 * from the hosts straight to Mongrel2. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

#define DEFAULT_TIMEOUT 3.0

static int relay_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "lubeck relay: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see lubeck --help)\n");
    return 2;
}

static int append(char *list, size_t len, const char *spec)
{
    size_t used = strlen(list);
    int n = snprintf(list + used, len - used, "%s%s", used ? ";" : "", spec);
    return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

int relay_main(int argc, char **argv)
{
    static char sends[2048], recvs[2048];
    const char *listen = NULL;
    double timeout = DEFAULT_TIMEOUT;
    int nsend = 0, nrecv = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: lubeck relay --send SPEC --recv SPEC [--send SPEC --recv SPEC ...]\n"
                   "                    --listen tcp://ADDR:PORT [--timeout SECONDS]\n");
            return 0;
        }
        if (!v) return relay_usage("%s needs a value", a);
        if (!strcmp(a, "--send")) {
            if (append(sends, sizeof sends, v)) return relay_usage("too many --send: %s", v);
            nsend++;
        } else if (!strcmp(a, "--recv")) {
            if (append(recvs, sizeof recvs, v)) return relay_usage("too many --recv: %s", v);
            nrecv++;
        } else if (!strcmp(a, "--listen")) {
            listen = v;
        } else if (!strcmp(a, "--timeout")) {
            char *end;
            timeout = strtod(v, &end);
            if (end == v || *end || timeout < 0.5 || timeout > 3600) return relay_usage("bad --timeout: %s", v);
        } else {
            return relay_usage("unknown option %s", a);
        }
        i++;
    }
    if (nsend == 0 || nsend != nrecv) return relay_usage("%s", "needs --send and --recv in pairs");
    if (!listen) return relay_usage("%s", "needs --listen tcp://ADDR:PORT");
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    reader_config rc = { .send_specs = sends, .recv_specs = recvs, .listen = listen, .death_fd = -1,
                         .member_timeout = timeout, .tcp_heartbeats = 1 };
    char err[512];
    reader *r = reader_start(loop, &rc, err, sizeof err);
    if (!r) {
        fprintf(stderr, "lubeck relay: %s\n", err);
        return 1;
    }
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, stop_cb, SIGINT);
    ev_signal_init(&sigterm, stop_cb, SIGTERM);
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    fprintf(stderr, "lubeck relay: reading %s, hosts join at %s\n", sends, listen);
    ev_run(loop, 0);
    reader_stop(r);
    return 0;
}
