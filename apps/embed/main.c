/* apps/embed: a C program that runs lubeck inside its own libev loop, beside a
 * watcher of its own (the example of docs/embedding.md).
 *
 *   lubeck-embed APP_DIR --send SPEC --recv SPEC [--tick SECONDS] [--drain SECONDS]
 *
 * Its timer counts ticks; it registers two C functions the app's handlers call:
 *   require("lubeck.native").ticks()      → the ticks counted so far
 *   require("lubeck.native").greet(name)  → "hello, NAME, from C"
 * SIGINT/SIGTERM: lubeck_stop, wait until the requests in flight have ended (at
 * most --drain seconds), lubeck_free. The program never calls ev_break: once
 * lubeck is freed and its own watchers are stopped, no watcher is left and
 * ev_run returns by itself.
 *
 * Build: cc main.c $(pkg-config --cflags --libs lubeck) -o embed */
#include <lubeck.h>
#include <lauxlib.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    lubeck *host;
    unsigned long ticks;
    double drain, stop_started;
    ev_timer tick, drain_poll;
    ev_signal sigint, sigterm;
} E;

/* ---- the C functions the app calls ------------------------------------------ */

static int l_ticks(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)E.ticks);
    return 1;
}

static int l_greet(lua_State *L)
{
    lua_pushfstring(L, "hello, %s, from C", luaL_checkstring(L, 1));
    return 1;
}

/* ---- the program's own watchers ------------------------------------------------ */

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    E.ticks++;
}

static void finish(struct ev_loop *loop)
{
    int left = lubeck_inflight(E.host);
    ev_timer_stop(loop, &E.drain_poll);
    ev_timer_stop(loop, &E.tick);
    ev_signal_stop(loop, &E.sigint);
    ev_signal_stop(loop, &E.sigterm);
    lubeck_free(E.host);   /* stops every watcher lubeck started, abandons the rest */
    E.host = NULL;
    fprintf(stderr, "embed: stopped after %lu ticks, %d request(s) abandoned\n", E.ticks, left);
}

static void drain_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    if (lubeck_inflight(E.host) == 0 || ev_now(loop) - E.stop_started >= E.drain) finish(loop);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (!E.host) return;
    if (E.stop_started > 0) return finish(loop);   /* a second signal: now */
    E.stop_started = ev_now(loop);
    lubeck_stop(E.host);                           /* no new requests */
    ev_timer_init(&E.drain_poll, drain_poll_cb, 0, 0.02);
    ev_timer_start(loop, &E.drain_poll);
}

static int usage(const char *why)
{
    fprintf(stderr, "embed: %s\nusage: lubeck-embed APP_DIR --send SPEC --recv SPEC "
                    "[--tick SECONDS] [--drain SECONDS]\n", why);
    return 2;
}

int main(int argc, char **argv)
{
    lubeck_config cfg = { 0 };
    double tick = 0.05;
    E.drain = 10;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (arg[0] != '-') { cfg.app = arg; continue; }
        if (!val) return usage("an option needs a value");
        if (!strcmp(arg, "--send")) cfg.send_spec = val;
        else if (!strcmp(arg, "--recv")) cfg.recv_spec = val;
        else if (!strcmp(arg, "--tick")) tick = atof(val);
        else if (!strcmp(arg, "--drain")) E.drain = atof(val);
        else return usage("unknown option");
        i++;
    }
    if (!cfg.app || !cfg.send_spec || !cfg.recv_spec) return usage("APP_DIR, --send and --recv are needed");
    if (!(tick > 0)) return usage("--tick must be positive");

    struct ev_loop *loop = EV_DEFAULT;
    signal(SIGPIPE, SIG_IGN);   /* a handler's socket peer may go away */
    char err[1024];
    E.host = lubeck_new(loop, &cfg, err, sizeof err);
    if (!E.host) {
        fprintf(stderr, "embed: %s\n", err);
        return 1;
    }
    /* Before lubeck_start: the app may call them while it loads. */
    if (lubeck_register(E.host, "ticks", l_ticks) != 0 ||
        lubeck_register(E.host, "greet", l_greet) != 0) {
        fprintf(stderr, "embed: lubeck_register failed\n");
        lubeck_free(E.host);
        return 1;
    }
    if (lubeck_start(E.host) != 0) {   /* loads the app, connects, joins the loop */
        fprintf(stderr, "embed: %s\n", lubeck_error(E.host));
        lubeck_free(E.host);
        return 1;
    }

    ev_timer_init(&E.tick, tick_cb, tick, tick);
    ev_timer_start(loop, &E.tick);
    ev_signal_init(&E.sigint, stop_cb, SIGINT);
    ev_signal_init(&E.sigterm, stop_cb, SIGTERM);
    ev_signal_start(loop, &E.sigint);
    ev_signal_start(loop, &E.sigterm);
    fprintf(stderr, "embed: serving %s with lubeck %s, ticking every %gs\n", cfg.app,
            LUBECK_VERSION, tick);

    ev_run(loop, 0);   /* lubeck's watchers and ours, side by side */
    ev_loop_destroy(loop);
    return 0;
}
