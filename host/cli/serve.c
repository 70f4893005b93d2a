/* `lubeck serve`: one machine, no setup. Writes a Mongrel2 config into the run
 * folder, loads it with m2sh, starts mongrel2, runs the host against it, prints
 * the URL once it answers, and stops both on SIGINT/SIGTERM. */
#include "cli.h"
#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

typedef struct serve_state {
    cli_options *o;
    char app[4096], run[4200];
    pid_t mongrel2;
    ev_child child;
    ev_timer probe;
    ev_io probe_io;
    int probe_sent;
    double probe_started, probe_attempt;
    char answer[512];            /* the probe's answer as it arrives */
    size_t answer_len;
    int answered;                /* workers that have answered a probe */
    int answered_pids[64];       /* which (the first 64 are enough to count) */
    int announced;
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
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    fprintf(stderr, "%s", buf);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    serve_state *s = w->data;
    ev_child_stop(loop, w);
    s->mongrel2 = 0;
    char log[4300];
    snprintf(log, sizeof log, "%s/logs/mongrel2.log", s->run);
    fprintf(stderr, "lubeck: mongrel2 exited (status %d); its log (%s) ends with:\n",
            WIFEXITED(w->rstatus) ? WEXITSTATUS(w->rstatus) : 128 + WTERMSIG(w->rstatus), log);
    print_tail(log);
    runner_abort(1);
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
    printf("lubeck: serving %s on http://%s:%d/\n", s->app, s->o->host, s->o->port);
    fflush(stdout);
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
        fprintf(stderr, "lubeck: no answer through mongrel2 on port %d within 15s\n", s->o->port);
        ev_timer_stop(loop, w);
        runner_abort(1);
        return;
    }
    /* An attempt that got no answer in a second is dropped and made again. */
    if (ev_is_active(&s->probe_io) && ev_now(loop) - s->probe_attempt < 1.0) return;
    if (ev_is_active(&s->probe_io)) probe_close(s, loop);
    probe_start(s, loop);
}

static void start_mongrel2(void *ud)
{
    serve_state *s = ud;
    struct ev_loop *loop = EV_DEFAULT;
    ev_child_init(&s->child, child_cb, s->mongrel2, 0);
    s->child.data = s;
    ev_child_start(loop, &s->child);
    s->probe_started = ev_now(loop);
    ev_timer_init(&s->probe, probe_cb, 0.02, 0.05);
    s->probe.data = s;
    ev_timer_start(loop, &s->probe);
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
    if (o->run_dir) {
        if (mkdir_p(o->run_dir) != 0 || !realpath(o->run_dir, s.run)) {
            fprintf(stderr, "lubeck: cannot create run folder %s: %s\n", o->run_dir, strerror(errno));
            return 1;
        }
    } else {
        snprintf(s.run, sizeof s.run, "%s/.lubeck", s.app);
    }
    const char *subdirs[] = { "logs", "run", "tmp" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", s.run, subdirs[i]);
        if (mkdir_p(path) != 0) {
            fprintf(stderr, "lubeck: cannot create %s: %s\n", path, strerror(errno));
            return 1;
        }
    }

    char send[64], recv[64], handler_uuid[37], server_uuid[37];
    int send_port = free_port(), recv_port = free_port();
    if (send_port < 0 || recv_port < 0 || send_port == recv_port) {
        fprintf(stderr, "lubeck: no free loopback port for ZeroMQ\n");
        return 1;
    }
    snprintf(send, sizeof send, "tcp://127.0.0.1:%d", send_port);
    snprintf(recv, sizeof recv, "tcp://127.0.0.1:%d", recv_port);
    host_uuid(handler_uuid);
    host_uuid(server_uuid);
    host_uuid(o->probe_token);
    m2conf_params p = {
        .app_dir = s.app, .run_dir = s.run, .host = o->host, .port = o->port,
        .send_spec = send, .recv_spec = recv, .handler_uuid = handler_uuid,
        .server_uuid = server_uuid, .max_body = o->max_body,
    };
    char conf[16384], conf_path[4300], db[4300], log[4300];
    int n = m2conf_write(conf, sizeof conf, &p);
    snprintf(conf_path, sizeof conf_path, "%s/mongrel2.conf", s.run);
    snprintf(db, sizeof db, "%s/config.sqlite", s.run);
    snprintf(log, sizeof log, "%s/logs/mongrel2.log", s.run);
    unlink(db);
    if (n < 0 || write_file(conf_path, conf, (size_t)n) != 0) {
        fprintf(stderr, "lubeck: cannot write %s\n", conf_path);
        return 1;
    }
    char *load[] = { "m2sh", "load", "-config", conf_path, "-db", db, NULL };
    int rc = run_logged(load, log);
    if (rc != 0) {
        fprintf(stderr, "lubeck: m2sh load failed (status %d):\n", rc);
        print_tail(log);
        return 1;
    }

    /* cwd '/' so that relative paths mean the same with and without chroot. */
    s.mongrel2 = fork();
    if (s.mongrel2 < 0) {
        fprintf(stderr, "lubeck: fork: %s\n", strerror(errno));
        return 1;
    }
    if (s.mongrel2 == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        if (chdir("/") != 0) _exit(127);
        setpgid(0, 0);   /* a terminal's Ctrl-C goes to lubeck, which stops it in order */
        prctl(PR_SET_PDEATHSIG, SIGTERM);   /* and if lubeck is killed, it goes too */
        execlp("mongrel2", "mongrel2", db, server_uuid, (char *)NULL);
        fprintf(stderr, "cannot run mongrel2: %s\n", strerror(errno));
        _exit(127);
    }
    static char upload_dir[4300];   /* Mongrel2's upload.temp_store is RUN/tmp/upload.XXXXXX */
    snprintf(upload_dir, sizeof upload_dir, "%s/tmp", s.run);
    o->upload_dir = upload_dir;
    if (o->workers > 1) rc = master_run(o, send, recv, start_mongrel2, stop_mongrel2, &s);
    else rc = runner_run(o, send, recv, start_mongrel2, stop_mongrel2, &s);
    stop_mongrel2(&s);
    return rc;
}
