#include "log.h"

#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fd_writable(int fd, int wait_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    return poll(&p, 1, wait_ms) == 1 && (p.revents & POLLOUT);
}

/* How long a log line waits for a stderr that is full: a slow reader gets
 * that long; one that has stopped (a line was dropped since the last that
 * went) gets no wait at all, so a stuck reader costs the host one pause. */
#define STDERR_WAIT_MS 200

static void vlog(const char *level, const char *fmt, va_list ap)
{
    /* A stderr nobody reads (a full pipe) must not stop the host: the line is
     * dropped and counted, and the count written before the next line that goes. */
    static unsigned long dropped;
    if (!fd_writable(2, dropped ? 0 : STDERR_WAIT_MS)) {
        dropped++;
        return;
    }
    char line[4096];
    int n = 0;
    if (dropped)
        n = snprintf(line, sizeof line, "lubeck[%d]: %lu log lines dropped: stderr was not being read\n",
                     (int)getpid(), dropped);
    dropped = 0;
    int m = snprintf(line + n, sizeof line - (size_t)n, "lubeck[%d]: %s", (int)getpid(), level);
    if (m < 0) return;
    n += m;
    m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line, so lines of several workers never interleave. A full
     * disk or closed stderr must not take the host down: ignore the result. */
    ssize_t ignored = write(2, line, len);
    (void)ignored;
}

void log_error(const char *fmt, ...)
{
    va_list ap; va_start(ap, fmt); vlog("error: ", fmt, ap); va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap; va_start(ap, fmt); vlog("warning: ", fmt, ap); va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap; va_start(ap, fmt); vlog("", fmt, ap); va_end(ap);
}

int log_rate_ok(double *last, unsigned *dropped)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    if (*last != 0 && now - *last < 1.0) {
        ++*dropped;
        return 0;
    }
    if (*dropped) log_warn("(%u similar messages suppressed)", *dropped);
    *last = now;
    *dropped = 0;
    return 1;
}

/* Access lines are collected here and written by log_flush, only as much as
 * stdout takes without blocking: a reader that stops reading (a full pipe)
 * must not stop the host. Past ACCESS_MAX unwritten bytes lines are dropped
 * and counted, and the count is written once stdout drains. To a pipe or a
 * socket the writes are whole lines of at most PIPE_BUF bytes, so the lines
 * of several workers sharing it never interleave. */
#define ACCESS_MAX (1 << 20)

static struct {
    char *buf;
    size_t len, cap;
    unsigned long dropped;
} access_log;

void log_access(const char *line, size_t len)
{
    if (access_log.len + len > access_log.cap) {
        size_t cap = access_log.cap ? access_log.cap * 2 : 1 << 16;
        while (cap < access_log.len + len) cap *= 2;
        char *grown = cap <= ACCESS_MAX ? realloc(access_log.buf, cap) : NULL;
        if (!grown) {
            access_log.dropped++;
            return;
        }
        access_log.buf = grown;
        access_log.cap = cap;
    }
    memcpy(access_log.buf + access_log.len, line, len);
    access_log.len += len;
}

/* Writes buf[0..len) while stdout takes it; returns how much went. */
static size_t write_some(const char *buf, size_t len, int by_lines)
{
    size_t done = 0;
    while (done < len && fd_writable(1, 0)) {
        size_t n = len - done;
        if (by_lines && n > PIPE_BUF) {
            n = PIPE_BUF;
            while (n > 0 && buf[done + n - 1] != '\n') n--;
            if (n == 0) n = PIPE_BUF;   /* a line longer than PIPE_BUF goes in pieces */
        }
        ssize_t w = write(1, buf + done, n);
        if (w <= 0) break;   /* a full disk or a closed stdout: the lines wait, then drop */
        done += (size_t)w;
    }
    return done;
}

void log_flush(void)
{
    if (__fpending(stdout) > 0 && fd_writable(1, 0)) fflush(stdout);   /* a handler's print */
    struct stat st;
    int by_lines = fstat(1, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    if (access_log.len > 0) {
        size_t done = write_some(access_log.buf, access_log.len, by_lines);
        memmove(access_log.buf, access_log.buf + done, access_log.len - done);
        access_log.len -= done;
    }
    /* Once what was kept before the drop is out: how many went missing. */
    if (access_log.dropped && access_log.len == 0) {
        char note[96];
        int n = snprintf(note, sizeof note, "lubeck: %lu access lines dropped: stdout was not being read\n",
                         access_log.dropped);
        if (write_some(note, (size_t)n, by_lines) == (size_t)n) access_log.dropped = 0;
    }
}

void log_flush_final(void)
{
    /* At the end, a reader that is merely slow gets a second to take the rest. */
    for (int i = 0; i < 10 && log_pending(); i++) {
        log_flush();
        struct pollfd p = { .fd = 1, .events = POLLOUT };
        if (log_pending()) poll(&p, 1, 100);
    }
    log_flush();
}

int log_pending(void)
{
    return access_log.len > 0 || access_log.dropped > 0 || __fpending(stdout) > 0;
}
