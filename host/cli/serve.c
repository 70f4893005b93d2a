/* `lubeck serve`: one machine, no setup. Writes a Mongrel2 config into the run
 * folder, loads it with m2sh, starts mongrel2, runs the host against it, prints
 * the URL once it answers, and stops both on SIGINT/SIGTERM/SIGHUP. Mongrel2 is
 * supervised: when it dies it is started again after a pause that grows while
 * it keeps dying young. Whatever keeps it from starting is said in one line
 * (the port in use, another serve on the run folder, a config m2sh refuses). */
#include "serve.h"
#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "m2conf.h"
#include "master.h"
#include "runner.h"

/* Mongrel2 restarts: the pause doubles from RESTART_FIRST up to RESTART_MAX
 * while it dies within YOUNG seconds of starting; GIVE_UP such deaths in a row
 * end serve. */
#define RESTART_FIRST 0.1
#define RESTART_MAX 5.0
#define YOUNG 10.0
#define GIVE_UP 6

typedef struct serve_state {
    cli_options *o;
    char app[4096], run[4200];
    char db[4300], log[4300], pid_file[4300];
    char server_uuid[37];
    pid_t mongrel2;
    ev_child child;
    ev_timer restart;
    double started;              /* when the running mongrel2 was started */
    long log_start;              /* its log's size then: its own lines follow */
    double pause;                /* before the next restart */
    int young_deaths;            /* in a row */
    int up;                      /* a probe went through once: start-up is over */
    ev_timer probe;
    ev_io probe_io;
    int probe_sent;
    double probe_started, probe_attempt;
    char answer[512];            /* the probe's answer as it arrives */
    size_t answer_len;
    int answered;                /* workers that have answered a probe */
    int answered_pids[64];       /* which (the first 64 are enough to count) */
} serve_state;

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* A free loopback TCP port, chosen by the kernel. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Runs argv with stdout and stderr into log; returns its exit status. */
static int run_logged(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        setenv("LOGNAME", "lubeck", 0);   /* m2sh complains without one */
        execvp(argv[0], argv);
        fprintf(stderr, "[ERROR] (errno: None) cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* Lines Mongrel2 logs as errors that say nothing about why it stopped. */
static int benign(const char *line)
{
    return strstr(line, "Failed to open PID file") || strstr(line, "flying blind") ||
           strstr(line, "no such table: log");
}

/* The first error Mongrel2 (or m2sh) logged in path after offset, as one line:
 * "MESSAGE (ERRNO)". Returns 0, or -1 when it logged none. A port someone else
 * holds is said as such. */
static int logged_cause(const char *path, long offset, int port, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    fseek(f, offset, SEEK_SET);
    char line[2048];
    int found = -1;
    while (found && fgets(line, sizeof line, f)) {
        const char *tag = strstr(line, "[ERROR] (");
        if (!tag || benign(line)) continue;
        line[strcspn(line, "\r\n")] = 0;
        const char *close = strstr(tag, ") ");
        const char *msg = close ? close + 2 : tag + 8;
        char why[128] = "";
        const char *e = strstr(tag, "errno: ");
        if (e && (!close || e < close)) {
            size_t n = (size_t)((close ? close : e + strlen(e)) - (e + 7));
            snprintf(why, sizeof why, "%.*s", (int)(n < sizeof why ? n : sizeof why - 1), e + 7);
        }
        if (strstr(why, "Address already in use")) snprintf(out, len, "port %d is in use", port);
        else if (why[0] && strcmp(why, "None")) snprintf(out, len, "%s (%s)", msg, why);
        else snprintf(out, len, "%s", msg);
        found = 0;
    }
    fclose(f);
    return found;
}

static void describe_exit(int status, char *out, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(out, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, len, "exited with status %d", WIFEXITED(status) ? WEXITSTATUS(status) : status);
}

static void probe_begin(serve_state *s, struct ev_loop *loop);

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    serve_state *s = w->data;
    ev_child_stop(loop, w);
    s->mongrel2 = 0;
    char how[128], cause[1024];
    describe_exit(w->rstatus, how, sizeof how);
    double lived = ev_now(loop) - s->started;
    /* Its first logged error says why only if it exited on its own soon after
     * starting; a long-lived one has logged errors about clients meanwhile. */
    int has_cause = !WIFSIGNALED(w->rstatus) && (!s->up || lived < YOUNG) &&
                    logged_cause(s->log, s->log_start, s->o->port, cause, sizeof cause) == 0;
    if (!s->up) {   /* it never answered: nothing to restart */
        if (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 127)
            fprintf(stderr, "lubeck: cannot run mongrel2: is it installed? (Debian: apt-get install mongrel2-core)\n");
        else if (has_cause) fprintf(stderr, "lubeck: mongrel2 could not start: %s (log: %s)\n", cause, s->log);
        else fprintf(stderr, "lubeck: mongrel2 %s while starting (log: %s)\n", how, s->log);
        ev_timer_stop(loop, &s->probe);
        runner_abort(1);
        return;
    }
    if (lived < YOUNG) {
        s->young_deaths++;
        s->pause = s->pause ? s->pause * 2 : RESTART_FIRST;
        if (s->pause > RESTART_MAX) s->pause = RESTART_MAX;
    } else {
        s->young_deaths = 0;
        s->pause = RESTART_FIRST;
    }
    if (s->young_deaths >= GIVE_UP) {
        fprintf(stderr, "lubeck: mongrel2 %s, %d times in a row within %gs of starting; giving up%s%s\n",
                how, s->young_deaths, YOUNG, has_cause ? ": " : "", has_cause ? cause : "");
        runner_abort(1);
        return;
    }
    fprintf(stderr, "lubeck: mongrel2 %s%s%s; restarting it in %gs\n", how,
            has_cause ? ": " : "", has_cause ? cause : "", s->pause);
    ev_timer_set(&s->restart, s->pause, 0);
    ev_timer_start(loop, &s->restart);
}

/* Forks mongrel2 with its output appended to the log. cwd '/' so that relative
 * paths mean the same with and without chroot. */
static int spawn_mongrel2(serve_state *s, struct ev_loop *loop)
{
    unlink(s->pid_file);   /* a killed one leaves it, and its pid may be reused */
    s->log_start = file_size(s->log);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "lubeck: cannot start mongrel2: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        if (chdir("/") != 0) _exit(127);
        setpgid(0, 0);   /* a terminal's Ctrl-C goes to lubeck, which stops it in order */
        prctl(PR_SET_PDEATHSIG, SIGTERM);   /* and if lubeck is killed, it goes too */
        execlp("mongrel2", "mongrel2", s->db, s->server_uuid, (char *)NULL);
        fprintf(stderr, "[ERROR] (errno: None) cannot run mongrel2: %s\n", strerror(errno));
        _exit(127);
    }
    s->mongrel2 = pid;
    s->started = ev_now(loop);
    ev_child_set(&s->child, pid, 0);
    ev_child_start(loop, &s->child);
    return 0;
}

static void restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    serve_state *s = w->data;
    if (spawn_mongrel2(s, loop) != 0) {
        runner_abort(1);
        return;
    }
    probe_begin(s, loop);
}

/* The probe: a request through Mongrel2 to the host and back, which the host
 * answers itself (204) when it carries this run's token. It proves Mongrel2
 * listens and both ZeroMQ connections are up, so the URL is printed only when
 * a browser's request would be answered. With --workers N it goes on until N
 * different workers have answered, so none is still starting then. The probes
 * go on one keep-alive connection: Mongrel2 deals messages round-robin over
 * the workers it is connected to, and a connection per probe would add a
 * disconnect notice between two probes, which sends every probe to the same
 * worker. Non-blocking: the host that must answer may run on this same loop. */
static int workers_expected(const serve_state *s)
{
    int n = s->o->workers > 1 ? s->o->workers : 1;
    return n < 64 ? n : 64;
}

static void probe_close(serve_state *s, struct ev_loop *loop)
{
    ev_io_stop(loop, &s->probe_io);
    if (s->probe_io.fd >= 0) close(s->probe_io.fd);
    s->probe_io.fd = -1;
}

static void announce(serve_state *s, struct ev_loop *loop)
{
    probe_close(s, loop);
    ev_timer_stop(loop, &s->probe);
    if (s->up) fprintf(stderr, "lubeck: mongrel2 restarted; serving again on http://%s:%d/\n",
                       s->o->host, s->o->port);
    else printf("lubeck: serving %s on http://%s:%d/\n", s->app, s->o->host, s->o->port);
    fflush(stdout);
    s->up = 1;
}

/* Counts the worker named in a 204 answer; returns 1 when all have answered. */
static int count_worker(serve_state *s, const char *answer)
{
    const char *h = strstr(answer, "X-Lubeck-Worker: ");
    int pid = h ? atoi(h + 17) : 0;
    for (int i = 0; i < s->answered; i++)
        if (s->answered_pids[i] == pid) return 0;
    s->answered_pids[s->answered++] = pid;
    return s->answered >= workers_expected(s);
}

static void probe_wait_for(serve_state *s, struct ev_loop *loop, int events)
{
    ev_io_stop(loop, &s->probe_io);
    ev_io_set(&s->probe_io, s->probe_io.fd, events);
    ev_io_start(loop, &s->probe_io);
}

static void probe_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    serve_state *s = w->data;
    if (!s->probe_sent) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        char req[256];
        int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: lubeck\r\nX-Lubeck-Probe: %s\r\n\r\n",
                         s->o->probe_token);
        if (err || send(w->fd, req, (size_t)n, MSG_NOSIGNAL) != n) return probe_close(s, loop);
        s->probe_sent = 1;
        s->answer_len = 0;
        s->probe_attempt = ev_now(loop);
        return probe_wait_for(s, loop, EV_READ);
    }
    ssize_t n = recv(w->fd, s->answer + s->answer_len, sizeof s->answer - 1 - s->answer_len, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return probe_close(s, loop);
    s->answer_len += (size_t)n;
    s->answer[s->answer_len] = 0;
    if (!strstr(s->answer, "\r\n\r\n") && s->answer_len < sizeof s->answer - 1) return;
    if (strncmp(s->answer, "HTTP/1.1 204", 12) != 0) return probe_close(s, loop);
    if (count_worker(s, s->answer)) return announce(s, loop);
    s->probe_sent = 0;            /* the next probe, on the same connection */
    probe_wait_for(s, loop, EV_WRITE);
}

static void probe_start(serve_state *s, struct ev_loop *loop)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->o->port) };
    inet_pton(AF_INET, s->o->host, &a.sin_addr);
    if (fd < 0) return;
    connect(fd, (struct sockaddr *)&a, sizeof a);
    s->probe_sent = 0;
    s->probe_attempt = ev_now(loop);
    ev_io_init(&s->probe_io, probe_io_cb, fd, EV_WRITE);
    s->probe_io.data = s;
    ev_io_start(loop, &s->probe_io);
}

/* Every 50 ms until every worker has answered: start a new connection if none
 * is on, or if the one on has waited a second for an answer. */
static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    serve_state *s = w->data;
    if (ev_now(loop) - s->probe_started > 15) {
        probe_close(s, loop);
        if (s->answered > 0) {
            fprintf(stderr, "lubeck: only %d of %d workers answered through mongrel2 within 15s\n",
                    s->answered, workers_expected(s));
            announce(s, loop);
            return;
        }
        ev_timer_stop(loop, w);
        if (s->up) {   /* after a restart: keep serving, mongrel2 may still come round */
            fprintf(stderr, "lubeck: mongrel2 restarted but answered no request within 15s\n");
            return;
        }
        fprintf(stderr, "lubeck: no answer through mongrel2 on port %d within 15s\n", s->o->port);
        runner_abort(1);
        return;
    }
    /* An attempt that got no answer in a second is dropped and made again. */
    if (ev_is_active(&s->probe_io) && ev_now(loop) - s->probe_attempt < 1.0) return;
    if (ev_is_active(&s->probe_io)) probe_close(s, loop);
    probe_start(s, loop);
}

static void probe_begin(serve_state *s, struct ev_loop *loop)
{
    probe_close(s, loop);
    s->answered = 0;
    s->probe_started = ev_now(loop);
    ev_timer_init(&s->probe, probe_cb, 0.02, 0.05);
    s->probe.data = s;
    ev_timer_start(loop, &s->probe);
}

/* on_ready: the host is up (its app loaded), so mongrel2 can start. */
static void start_mongrel2(void *ud)
{
    serve_state *s = ud;
    struct ev_loop *loop = EV_DEFAULT;
    ev_child_init(&s->child, child_cb, 0, 0);
    s->child.data = s;
    ev_init(&s->restart, restart_cb);
    s->restart.data = s;
    if (spawn_mongrel2(s, loop) != 0) {
        runner_abort(1);
        return;
    }
    probe_begin(s, loop);
}

/* Client connections Mongrel2 holds open on port (ESTABLISHED in /proc/net/tcp*). */
static int open_connections(int port)
{
    const char *tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    int n = 0;
    for (int t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f) continue;
        char line[512];
        while (fgets(line, sizeof line, f)) {
            unsigned local_port, state;
            /* "  0: 0100007F:1A6F 0100007F:C350 01 ..." */
            if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &local_port, &state) == 2 &&
                (int)local_port == port && state == 1)
                n++;
        }
        fclose(f);
    }
    return n;
}

static void stop_mongrel2(void *ud)
{
    serve_state *s = ud;
    ev_timer_stop(EV_DEFAULT, &s->restart);
    ev_timer_stop(EV_DEFAULT, &s->probe);
    probe_close(s, EV_DEFAULT);
    if (s->mongrel2 <= 0) return;
    /* The last replies may still be on their way through Mongrel2: give the
     * clients up to a second to receive them and hang up. */
    for (int i = 0; i < 50 && open_connections(s->o->port) > 0; i++) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    ev_child_stop(EV_DEFAULT, &s->child);
    kill(s->mongrel2, SIGTERM);
    /* Mongrel2 exits promptly on its first SIGTERM; give it 5 s, then force it. */
    for (int i = 0; i < 250; i++) {
        int status;
        if (waitpid(s->mongrel2, &status, WNOHANG) == s->mongrel2) { s->mongrel2 = 0; return; }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(s->mongrel2, SIGKILL);
    waitpid(s->mongrel2, NULL, 0);
    s->mongrel2 = 0;
}

/* One serve per run folder: a second would rewrite the first one's config and
 * start a Mongrel2 that cannot have its port. The lock lives as long as this
 * process (and the workers it forks); mongrel2 does not inherit it. */
static int lock_run_folder(const serve_state *s)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/run/serve.pid", s->run);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "lubeck: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? strcspn(pid, "\n") : 0] = 0;
        fprintf(stderr, "lubeck: another lubeck serve%s%s%s is running on the run folder %s "
                        "(stop it, or give this one --run-dir)\n",
                pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", s->run);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {}   /* the pid is only a hint */
    return 0;   /* fd stays open: the lock with it */
}

/* Says in one line why mongrel2 could not listen on host:port, before it tries:
 * -1 when it could not. A host name that is not an IPv4 address is left to
 * Mongrel2. */
static int check_port(const char *host, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);   /* as Mongrel2 binds */
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a), err = errno;
    close(fd);
    if (rc == 0) return 0;
    if (err == EADDRINUSE) fprintf(stderr, "lubeck: port %d is in use on %s (choose another with --port)\n", port, host);
    else if (err == EADDRNOTAVAIL) fprintf(stderr, "lubeck: cannot listen on %s: not an address of this machine\n", host);
    else if (err == EACCES) fprintf(stderr, "lubeck: port %d needs root (choose one above 1023 with --port)\n", port);
    else return 0;
    return -1;
}

static int make_run_folder(serve_state *s)
{
    char path[4300];
    if (s->o->run_dir) {
        if (mkdir_p(s->o->run_dir) != 0 || !realpath(s->o->run_dir, s->run)) {
            fprintf(stderr, "lubeck: cannot create run folder %s: %s\n", s->o->run_dir, strerror(errno));
            return -1;
        }
    } else {
        snprintf(s->run, sizeof s->run, "%s/.lubeck", s->app);
    }
    const char *subdirs[] = { "logs", "run", "tmp" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", s->run, subdirs[i]);
        if (mkdir_p(path) != 0) {
            fprintf(stderr, "lubeck: cannot create %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    /* Nothing in it is source: git leaves the whole folder out by itself. */
    snprintf(path, sizeof path, "%s/.gitignore", s->run);
    if (access(path, F_OK) != 0) write_file(path, "*\n", 2);
    return 0;
}

/* Writes the config and loads it with m2sh, which exits 0 even when it
 * refuses a config: what it logged tells. */
static int load_config(serve_state *s, const char *send, const char *recv, const char *handler_uuid)
{
    m2conf_params p = {
        .app_dir = s->app, .run_dir = s->run, .host = s->o->host, .port = s->o->port,
        .send_spec = send, .recv_spec = recv, .handler_uuid = handler_uuid,
        .server_uuid = s->server_uuid, .max_body = s->o->max_body,
    };
    char conf[16384], conf_path[4300], load_log[4300], cause[1024];
    int n = m2conf_write(conf, sizeof conf, &p);
    snprintf(conf_path, sizeof conf_path, "%s/mongrel2.conf", s->run);
    snprintf(load_log, sizeof load_log, "%s/logs/m2sh.log", s->run);
    unlink(s->db);
    if (n < 0 || write_file(conf_path, conf, (size_t)n) != 0) {
        fprintf(stderr, "lubeck: cannot write %s\n", conf_path);
        return -1;
    }
    char *load[] = { "m2sh", "load", "-config", conf_path, "-db", s->db, NULL };
    int rc = run_logged(load, load_log);
    if (rc == 127) {
        fprintf(stderr, "lubeck: cannot run m2sh: is Mongrel2 installed? (Debian: apt-get install mongrel2-core)\n");
        return -1;
    }
    int logged = logged_cause(load_log, 0, s->o->port, cause, sizeof cause) == 0;
    if (!logged && rc == 0) return 0;
    if (!logged) snprintf(cause, sizeof cause, "m2sh exited with status %d", rc);
    fprintf(stderr, "lubeck: mongrel2 refused its config %s: %s\n", conf_path, cause);
    return -1;
}

int serve_main(cli_options *o)
{
    static serve_state s;
    s.o = o;
    s.probe_io.fd = -1;
    char path[4300];
    snprintf(path, sizeof path, "%s/app.lua", o->app);
    if (!realpath(o->app, s.app) || access(path, R_OK) != 0) {
        fprintf(stderr, "lubeck: %s is not an app folder (no app.lua)\n", o->app);
        return 1;
    }
    if (make_run_folder(&s) != 0 || lock_run_folder(&s) != 0 || check_port(o->host, o->port) != 0)
        return 1;

    char send[64], recv[64], handler_uuid[37];
    int send_port = free_port(), recv_port = free_port();
    if (send_port < 0 || recv_port < 0 || send_port == recv_port) {
        fprintf(stderr, "lubeck: no free loopback port for ZeroMQ\n");
        return 1;
    }
    snprintf(send, sizeof send, "tcp://127.0.0.1:%d", send_port);
    snprintf(recv, sizeof recv, "tcp://127.0.0.1:%d", recv_port);
    host_uuid(handler_uuid);
    host_uuid(s.server_uuid);
    host_uuid(o->probe_token);
    snprintf(s.db, sizeof s.db, "%s/config.sqlite", s.run);
    snprintf(s.log, sizeof s.log, "%s/logs/mongrel2.log", s.run);
    snprintf(s.pid_file, sizeof s.pid_file, "%s/run/mongrel2.pid", s.run);
    if (load_config(&s, send, recv, handler_uuid) != 0) return 1;
    unlink(s.log);   /* this run's lines only */

    static char upload_dir[4300];   /* Mongrel2's upload.temp_store is RUN/tmp/upload.XXXXXX */
    snprintf(upload_dir, sizeof upload_dir, "%s/tmp", s.run);
    o->upload_dir = upload_dir;
    o->hup_stops = 1;
    int rc;
    if (o->workers > 1) rc = master_run(o, send, recv, start_mongrel2, stop_mongrel2, &s);
    else rc = runner_run(o, send, recv, start_mongrel2, stop_mongrel2, &s);
    stop_mongrel2(&s);
    return rc;
}
