/* lubeck relay: runs beside one Mongrel2 as the single reader of its requests
 * (reader.h), for hosts that join with `lubeck run APP --relay`. It routes;
 * it never answers a request itself, except 502 for what a host held when it
 * died or went silent (--timeout seconds, default 3). Replies go
 * from the hosts straight to Mongrel2. */
#include "relay.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void report_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    reader_report(w->data);
}

int relay_main(const cli_options *o)
{
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = EV_DEFAULT;
    reader_config rc = { .send_specs = o->send_specs, .recv_specs = o->recv_specs, .listen = o->listen,
                         .death_fd = -1, .member_timeout = o->relay_timeout, .tcp_heartbeats = 1,
                         .heartbeat = o->heartbeat };
    char err[512];
    reader *r = reader_start(loop, &rc, err, sizeof err);
    if (!r) {
        fprintf(stderr, "lubeck relay: %s\n", err);
        return 1;
    }
    ev_signal sigint, sigterm, sigusr1;
    ev_signal_init(&sigint, stop_cb, SIGINT);
    ev_signal_init(&sigterm, stop_cb, SIGTERM);
    ev_signal_init(&sigusr1, report_cb, SIGUSR1);
    sigusr1.data = r;
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    ev_signal_start(loop, &sigusr1);
    fprintf(stderr, "lubeck relay: reading %s, hosts join at %s\n", o->send_specs, o->listen);
    ev_run(loop, 0);
    reader_stop(r);
    return 0;
}
