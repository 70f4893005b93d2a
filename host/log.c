#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <time.h>
#include <unistd.h>

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[4096];
    int n = snprintf(line, sizeof line, "lubeck[%d]: %s", (int)getpid(), level);
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
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

void log_access(const char *line, size_t len)
{
    fwrite(line, 1, len, stdout);
}

void log_flush(void)
{
    fflush(stdout);
}

int log_pending(void)
{
    return __fpending(stdout) > 0;
}
