/* --workers N: a master process forks N workers, each with its own ZeroMQ
 * context and Lua state. One reader (reader.h, in the bus process) pulls from
 * every Mongrel2 front and hands each connection's messages to one worker, in
 * order, plain requests to the least busy; the workers reply to Mongrel2
 * directly. The master restarts a worker that dies (backing off when one dies
 * at once) and tells the reader at once, through a pipe, so that the reader
 * answers 502 for what that worker held; it kills one whose heartbeat stops (a
 * handler stuck in a CPU loop cannot be interrupted from inside LuaJIT), runs
 * the bus that carries channels between workers (and the Redis link to other
 * hosts with --redis), forwards SIGUSR1 (SIGHUP for run) and --reload
 * changes, and on SIGTERM waits for every worker to drain. With --relay there
 * is no reader here: each worker joins the relays itself.
 *
 * The master itself never has threads, so forking a worker from it is safe for
 * every library (glibc protects its own malloc across fork; ASan's allocator,
 * for one, is not protected, and a worker forked while a ZeroMQ thread held its
 * lock hung). That is why the bus runs in a process of its own: a ZeroMQ
 * context starts threads. */
#define _GNU_SOURCE   /* pipe2 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "check.h"
#include "reader.h"
#include "redis_bus.h"
#include "runner.h"
#include "shared.h"
#include "watch.h"

#define WATCHDOG_EVERY 0.25
#define FAST_DEATH 2.0           /* a worker that dies sooner than this backs off */
#define MAX_BACKOFF 5.0
#define BUS_CANNOT_BIND 3        /* the bus's exit status when its ipc names are taken */

typedef struct worker {
    pid_t pid;                   /* 0 when not running */
    double started, backoff;
    ev_timer restart;
} worker;

static struct {
    const cli_options *o;
    const char *send, *recv;
    worker *workers;
    int n;
    volatile double *beats;      /* shared with the workers: their last heartbeat */
    pid_t bus;                   /* the bus process; 0 when not running */
    ev_timer bus_restart;
    shared_zone *shared;
    char bus_in[96], bus_out[96];
    char redis_url[1024];        /* the bus process links the host to other hosts through it ("": none) */
    char reader[96];             /* where the workers connect to the reader ("" with --relay) */
    int death[2];                /* pipe: the master writes each dead worker's pid for the reader */
    ev_signal sigint, sigterm, sighup, sigusr1;
    ev_child child;
    ev_timer watchdog;
    app_watch *watch;
    int stopping;
    void (*on_stopped)(void *);
    void *ud;
} M;

static void spawn(int i)
{
    struct ev_loop *loop = EV_DEFAULT;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lubeck: cannot start worker %d: %s\n", i, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* The worker forgets the master's loop and signal handlers and builds
         * its own (its own zmq context too, inside runner). Stopping the
         * watchers first clears libev's record of the signals, so the worker's
         * loop installs its own handlers. */
        ev_signal_stop(loop, &M.sigint);
        ev_signal_stop(loop, &M.sigterm);
        ev_signal_stop(loop, &M.sighup);
        ev_signal_stop(loop, &M.sigusr1);
        ev_child_stop(loop, &M.child);
        ev_loop_destroy(loop);
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the master */
        close(M.death[0]);
        close(M.death[1]);
        worker_link link = { &M.beats[i], M.bus_in, M.bus_out, M.shared, M.reader[0] ? M.reader : NULL };
        _exit(runner_run_worker(M.o, M.send, M.recv, &link));
    }
    M.workers[i].pid = pid;
    M.workers[i].started = ev_time();
    M.beats[i] = ev_time();   /* grace while it loads the app */
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFEXITED(status)) snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status),
                                           strsignal(WTERMSIG(status)));
    else snprintf(out, len, "stopped (status %d)", status);
}

static void bus_term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

/* --redis in the bus process: what the workers publish goes to Redis, and what
 * other hosts publish comes back to every worker. */
static void channel_to_redis(void *ud, const char *name, size_t name_len, const char *payload, size_t len)
{
    redis_bus_publish(ud, name, name_len, payload, len);
}

static void channel_from_redis(void *ud, const char *name, size_t name_len, const char *payload, size_t len)
{
    bus_forwarder_send_channel(ud, name, name_len, payload, len);
}

/* The bus process: forwards channel messages between the workers (and to and
 * from Redis with --redis) and runs the reader. It ignores SIGINT and SIGHUP (a
 * terminal's ^C reaches the whole group, and the draining workers still need
 * the bus and the reader); the master ends it with SIGTERM after them. */
static void start_bus(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lubeck: cannot start the bus: %s (channels stay within each worker)\n", strerror(errno));
        return;
    }
    if (pid > 0) {
        M.bus = pid;
        return;
    }
    ev_signal_stop(EV_DEFAULT, &M.sigint);   /* (when restarted by a running master) */
    ev_signal_stop(EV_DEFAULT, &M.sigterm);
    ev_signal_stop(EV_DEFAULT, &M.sighup);
    ev_signal_stop(EV_DEFAULT, &M.sigusr1);
    ev_child_stop(EV_DEFAULT, &M.child);
    ev_loop_destroy(EV_DEFAULT);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(M.death[1]);
    struct ev_loop *loop = ev_default_loop(0);
    char err[512];
    bus_forwarder *bus = bus_forwarder_start(loop, M.bus_in, M.bus_out, err, sizeof err);
    if (!bus) fprintf(stderr, "lubeck: %s (channels stay within each worker)\n", err);
    reader *rd = NULL;
    if (M.reader[0]) {
        reader_config rc = { .send_specs = M.send, .recv_specs = M.recv, .listen = M.reader,
                             .death_fd = M.death[0], .quiet = 1, .heartbeat = M.o->heartbeat };
        rd = reader_start(loop, &rc, err, sizeof err);
        if (!rd) {
            fprintf(stderr, "lubeck: the reader: %s\n", err);
            _exit(BUS_CANNOT_BIND);
        }
    }
    if (!bus && !rd) _exit(BUS_CANNOT_BIND);
    redis_bus *redis = NULL;
    if (M.redis_url[0] && bus) {
        redis = redis_bus_start(loop, M.redis_url, channel_from_redis, bus, err, sizeof err);
        if (redis) bus_forwarder_tap_channels(bus, channel_to_redis, redis);
        else fprintf(stderr, "lubeck: %s (channels stay within this host)\n", err);
    }
    ev_signal term;
    ev_signal_init(&term, bus_term_cb, SIGTERM);
    ev_signal_start(loop, &term);
    ev_run(loop, 0);
    redis_bus_stop(redis);
    bus_forwarder_stop(bus);
    reader_stop(rd);
    _exit(0);
}

static void bus_restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    if (!M.stopping && !M.bus) start_bus();
}

static void bus_exited(struct ev_loop *loop, int status)
{
    M.bus = 0;
    if (M.stopping || (WIFEXITED(status) && WEXITSTATUS(status) == BUS_CANNOT_BIND)) return;
    char how[96];
    describe_exit(status, how, sizeof how);
    fprintf(stderr, "lubeck: the bus %s; restarting it\n", how);
    ev_timer_set(&M.bus_restart, 0.25, 0);   /* the workers' sockets reconnect by themselves */
    ev_timer_start(loop, &M.bus_restart);
}

static void stop_bus(void)
{
    if (!M.bus) return;
    kill(M.bus, SIGTERM);
    waitpid(M.bus, NULL, 0);
    M.bus = 0;
}

static int running(void)
{
    int n = 0;
    for (int i = 0; i < M.n; i++) n += M.workers[i].pid != 0;
    return n;
}

static void finish(struct ev_loop *loop)
{
    if (M.on_stopped) M.on_stopped(M.ud);
    M.on_stopped = NULL;
    ev_break(loop, EVBREAK_ALL);
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    int i;
    for (i = 0; i < M.n; i++)
        if (&M.workers[i].restart == w) break;
    if (i < M.n && !M.stopping && !M.workers[i].pid) spawn(i);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    if (M.bus && w->rpid == M.bus) return bus_exited(loop, w->rstatus);
    int i;
    for (i = 0; i < M.n; i++)
        if (M.workers[i].pid == w->rpid) break;
    if (i == M.n) return;   /* not a worker (e.g. serve's mongrel2) */
    worker *wk = &M.workers[i];
    wk->pid = 0;
    int32_t dead = w->rpid;   /* the reader answers what it held, now */
    if (write(M.death[1], &dead, sizeof dead) < 0 && errno != EAGAIN)
        fprintf(stderr, "lubeck: cannot tell the reader that worker %d died: %s\n", i, strerror(errno));
    char how[96];
    describe_exit(w->rstatus, how, sizeof how);
    if (M.stopping) {
        if (!WIFEXITED(w->rstatus) || WEXITSTATUS(w->rstatus) != 0)
            fprintf(stderr, "lubeck: worker %d (pid %d) %s while stopping\n", i, w->rpid, how);
        if (running() == 0) finish(loop);
        return;
    }
    double lived = ev_now(loop) - wk->started;
    wk->backoff = lived < FAST_DEATH ? (wk->backoff ? wk->backoff * 2 : 0.25) : 0;
    if (wk->backoff > MAX_BACKOFF) wk->backoff = MAX_BACKOFF;
    fprintf(stderr, "lubeck: worker %d (pid %d) %s after %.1fs; restarting it%s\n", i, w->rpid, how,
            lived, wk->backoff ? " after a pause" : "");
    ev_timer_set(&wk->restart, wk->backoff, 0);
    ev_timer_start(loop, &wk->restart);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    double now = ev_time();
    for (int i = 0; i < M.n; i++) {
        worker *wk = &M.workers[i];
        if (!wk->pid || now - M.beats[i] <= M.o->watchdog) continue;
        fprintf(stderr, "lubeck: worker %d (pid %d) sent no heartbeat for %.1fs (a handler that "
                        "never yields?): killing it\n", i, wk->pid, now - M.beats[i]);
        kill(wk->pid, SIGKILL);
        M.beats[i] = now;   /* one kill per silence */
    }
}

static void signal_all(int sig)
{
    for (int i = 0; i < M.n; i++)
        if (M.workers[i].pid) kill(M.workers[i].pid, sig);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    if (M.stopping) {
        fprintf(stderr, "lubeck: stopping now\n");
        signal_all(SIGKILL);
        return finish(loop);
    }
    M.stopping = 1;
    for (int i = 0; i < M.n; i++) ev_timer_stop(loop, &M.workers[i].restart);
    if (running() == 0) return finish(loop);
    signal_all(SIGTERM);   /* each drains its own requests */
}

static void reload_all(void *ud)
{
    signal_all(SIGHUP);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    reload_all(NULL);
}

int master_run(const cli_options *o, const char *send, const char *recv,
               void (*on_ready)(void *), void (*on_stopped)(void *), void *ud)
{
    struct ev_loop *loop = EV_DEFAULT;
    M.o = o;
    M.send = send;
    M.recv = recv;
    M.n = o->workers;
    M.on_stopped = on_stopped;
    M.ud = ud;
    M.workers = calloc((size_t)M.n, sizeof *M.workers);
    M.beats = mmap(NULL, (size_t)M.n * sizeof *M.beats, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!M.workers || M.beats == MAP_FAILED) {
        fprintf(stderr, "lubeck: out of memory for %d workers\n", M.n);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[4096];
    /* A broken app fails here, once, instead of in every worker. */
    if (app_check(o, err, sizeof err, M.redis_url, sizeof M.redis_url) != 0) {
        fprintf(stderr, "lubeck: %s\n", err);
        return 1;
    }
    snprintf(M.bus_in, sizeof M.bus_in, "ipc://@lubeck-%d-bus-in", (int)getpid());
    snprintf(M.bus_out, sizeof M.bus_out, "ipc://@lubeck-%d-bus-out", (int)getpid());
    if (!o->relay_specs[0]) snprintf(M.reader, sizeof M.reader, "ipc://@lubeck-%d-reader", (int)getpid());
    if (pipe2(M.death, O_CLOEXEC) != 0) {
        fprintf(stderr, "lubeck: pipe: %s\n", strerror(errno));
        return 1;
    }
    fcntl(M.death[1], F_SETFL, O_NONBLOCK);
    M.shared = shared_zone_new(SHARED_DEFAULT_SLOTS);
    ev_init(&M.bus_restart, bus_restart_cb);
    start_bus();

    ev_child_init(&M.child, child_cb, 0, 0);
    ev_child_start(loop, &M.child);
    ev_signal_init(&M.sigint, stop_cb, SIGINT);
    ev_signal_init(&M.sigterm, stop_cb, SIGTERM);
    /* serve: SIGHUP means its terminal closed, and stops it; SIGUSR1 reloads. */
    ev_signal_init(&M.sighup, o->hup_stops ? stop_cb : hup_cb, SIGHUP);
    ev_signal_init(&M.sigusr1, hup_cb, SIGUSR1);
    ev_signal_start(loop, &M.sigint);
    ev_signal_start(loop, &M.sigterm);
    ev_signal_start(loop, &M.sighup);
    ev_signal_start(loop, &M.sigusr1);
    for (int i = 0; i < M.n; i++) {
        ev_init(&M.workers[i].restart, restart_cb);
        spawn(i);
    }
    ev_timer_init(&M.watchdog, watchdog_cb, WATCHDOG_EVERY, WATCHDOG_EVERY);
    ev_timer_start(loop, &M.watchdog);
    if (o->reload) M.watch = watch_start(loop, o->app, reload_all, NULL);
    fprintf(stderr, "lubeck: master %d started %d workers\n", (int)getpid(), M.n);
    if (on_ready) on_ready(ud);

    ev_run(loop, 0);

    signal_all(SIGKILL);   /* only left after a second signal or an abort */
    watch_stop(M.watch);
    ev_timer_stop(loop, &M.watchdog);
    ev_child_stop(loop, &M.child);
    ev_timer_stop(loop, &M.bus_restart);
    stop_bus();
    shared_zone_free(M.shared);
    close(M.death[0]);
    close(M.death[1]);
    munmap((void *)M.beats, (size_t)M.n * sizeof *M.beats);
    free(M.workers);
    return runner_abort_status();
}
