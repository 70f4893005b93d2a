/* Runs one host on the default loop: SIGINT/SIGTERM stop it gracefully (new
 * requests are answered 503, parked waits wake, in-flight ones get up to --drain
 * seconds, then what is left is answered 503), SIGHUP reloads the app (under
 * serve it stops, as SIGINT does), and so does SIGUSR1.
 * Alone it also watches the app folder (--reload); as a worker it beats a
 * heartbeat for its master and joins the master's bus. */
#include "runner.h"

#include <signal.h>
#include <stdio.h>

#include "bus.h"
#include "channel.h"
#include "host.h"
#include "lubeck.h"
#include "member.h"
#include "watch.h"

#define HEARTBEAT_EVERY 0.5
/* Once the drain is done the host still answers 503 this long before it lets
 * go: the clients of the last requests send their next one the moment they
 * are answered, and letting go right then would drop those in transit. */
#define SETTLE_SECONDS 0.1

static struct {
    lubeck *host;
    double drain, stop_started, drained_at;
    int status;
    ev_signal sigint, sigterm, sighup, sigusr1;
    ev_timer drain_poll, heartbeat;
    volatile double *beat;
    app_watch *watch;
    void (*on_stopped)(void *);
    void *ud;
} R;

static void finish(struct ev_loop *loop)
{
    if (R.on_stopped) R.on_stopped(R.ud);
    R.on_stopped = NULL;
    ev_signal_stop(loop, &R.sigint);
    ev_signal_stop(loop, &R.sigterm);
    ev_signal_stop(loop, &R.sighup);
    ev_signal_stop(loop, &R.sigusr1);
    ev_timer_stop(loop, &R.drain_poll);
    ev_timer_stop(loop, &R.heartbeat);
    watch_stop(R.watch);
    R.watch = NULL;
    ev_break(loop, EVBREAK_ALL);
}

static void drain_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    int left = lubeck_inflight(R.host);
    if (left == 0 && R.host->member) {
        /* Behind a reader: until it says nothing more will come. */
        if (member_settled(R.host)) return finish(loop);
    } else if (left == 0) {
        if (R.drained_at == 0) R.drained_at = ev_now(loop);
        if (ev_now(loop) - R.drained_at >= SETTLE_SECONDS) finish(loop);
        return;
    } else {
        R.drained_at = 0;
    }
    if (ev_now(loop) - R.stop_started >= R.drain) {
        fprintf(stderr, "lubeck: drain time (%gs) is up: %d request(s) answered 503\n", R.drain, left);
        host_answer_unfinished(R.host);
        finish(loop);
    }
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (R.stop_started > 0) {   /* a second signal: stop now */
        fprintf(stderr, "lubeck: stopping now\n");
        return finish(loop);
    }
    fprintf(stderr, "lubeck: stopping (finishing %d request(s), up to %gs)\n",
            lubeck_inflight(R.host), R.drain);
    R.stop_started = ev_now(loop);
    lubeck_stop(R.host);
    ev_timer_init(&R.drain_poll, drain_poll_cb, 0, 0.02);
    ev_timer_start(loop, &R.drain_poll);
}

static void reload(void *ud)
{
    if (R.host && !R.stop_started) host_reload(R.host);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    reload(NULL);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    *R.beat = ev_now(loop);
}

int runner_abort_status(void)
{
    return R.status;
}

void runner_abort(int status)
{
    R.status = status;
    R.on_stopped = NULL;
    ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static int run(const cli_options *o, const char *send, const char *recv, const worker_link *link,
               void (*on_ready)(void *), void (*on_stopped)(void *), void *ud)
{
    struct ev_loop *loop = EV_DEFAULT;
    lubeck_config cfg = {
        .app = o->app, .send_spec = send, .recv_spec = recv, .sender_id = o->sender_id,
        .reload = o->reload, .debug = o->debug,
    };
    char err[4096];
    signal(SIGPIPE, SIG_IGN);
    R.host = lubeck_new(loop, &cfg, err, sizeof err);
    if (!R.host) {
        fprintf(stderr, "lubeck: %s\n", err);
        return 1;
    }
    if (o->upload_dir && host_set_upload_dir(R.host, o->upload_dir, o->m2_chroot) != 0) {
        fprintf(stderr, "lubeck: --upload-dir %s%s%s: no such folder\n", o->upload_dir,
                o->m2_chroot ? " or --m2-chroot " : "", o->m2_chroot ? o->m2_chroot : "");
        lubeck_free(R.host);
        return 1;
    }
    if (o->redis) channels_set_redis(R.host->channels, o->redis, err, sizeof err);   /* (checked with the options) */
    const char *readers = link && link->reader ? link->reader : o->relay_specs[0] ? o->relay_specs : NULL;
    if (readers && member_configure(R.host, readers, !(link && link->reader)) != 0) {
        fprintf(stderr, "lubeck: too many or too long --relay specs\n");
        lubeck_free(R.host);
        return 1;
    }
    snprintf(R.host->probe_token, sizeof R.host->probe_token, "%s", o->probe_token);
    if (link && link->shared) host_use_shared_zone(R.host, link->shared);
    if (o->max_inflight) R.host->max_inflight = o->max_inflight;
    if (o->max_headers) R.host->max_headers = o->max_headers;
    if (o->max_body_given) R.host->max_body = (size_t)o->max_body;
    R.host->heartbeat = o->heartbeat;
    if (lubeck_start(R.host) != 0) {
        fprintf(stderr, "lubeck: %s\n", lubeck_error(R.host));
        lubeck_free(R.host);
        return 1;
    }
    if (link && link->bus_in) {   /* the bus hands the other workers' messages to this host */
        R.host->bus = bus_connect(loop, R.host->zctx, link->bus_in, link->bus_out, R.host, err, sizeof err);
        if (!R.host->bus) fprintf(stderr, "lubeck: %s (channels stay within this worker)\n", err);
    }
    /* A worker's channels reach other hosts through its master's bus process. */
    if (!link && channels_start_redis(R.host->channels, err, sizeof err) != 0)
        fprintf(stderr, "lubeck: %s (channels stay within this host)\n", err);
    R.drain = o->drain;
    R.on_stopped = on_stopped;
    R.ud = ud;
    ev_signal_init(&R.sigint, stop_cb, SIGINT);
    ev_signal_init(&R.sigterm, stop_cb, SIGTERM);
    ev_signal_init(&R.sighup, o->hup_stops && !link ? stop_cb : hup_cb, SIGHUP);
    ev_signal_init(&R.sigusr1, hup_cb, SIGUSR1);
    ev_signal_start(loop, &R.sigint);
    ev_signal_start(loop, &R.sigterm);
    ev_signal_start(loop, &R.sighup);
    ev_signal_start(loop, &R.sigusr1);
    if (link && link->heartbeat) {
        R.beat = link->heartbeat;
        *R.beat = ev_now(loop);
        ev_timer_init(&R.heartbeat, heartbeat_cb, HEARTBEAT_EVERY, HEARTBEAT_EVERY);
        ev_timer_start(loop, &R.heartbeat);
    }
    if (!link && o->reload) R.watch = watch_start(loop, o->app, reload, NULL);
    if (on_ready) on_ready(ud);
    ev_run(loop, 0);
    lubeck_free(R.host);
    R.host = NULL;
    return R.status;
}

int runner_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *), void (*on_stopped)(void *), void *ud)
{
    return run(o, send, recv, NULL, on_ready, on_stopped, ud);
}

int runner_run_worker(const cli_options *o, const char *send, const char *recv,
                      const worker_link *link)
{
    return run(o, send, recv, link, NULL, NULL, NULL);
}
