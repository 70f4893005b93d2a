/* Logging: warnings and errors go to stderr with a "lubeck[pid]:" prefix; access
 * lines go to stdout. They are written a tenth of a second after they were
 * logged (the host's log timer), so a busy host writes them in batches and an
 * idle one almost at once; and only as fast as stdout takes them, so a reader
 * that stops reading costs access lines, never the host (log.c). */
#ifndef LUBECK_LOG_H
#define LUBECK_LOG_H

#include <stddef.h>

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* At most one line per second per call site: for faults a peer can repeat at will. */
#define log_error_limited(...) do { \
        static double last_; static unsigned dropped_; \
        if (log_rate_ok(&last_, &dropped_)) log_error(__VA_ARGS__); \
    } while (0)
int log_rate_ok(double *last, unsigned *dropped);

void log_access(const char *line, size_t len);
void log_flush(void);    /* writes what stdout takes now, never blocks on it */
void log_flush_final(void);   /* the same, waiting up to a second for a slow reader */
int log_pending(void);   /* lines or a handler's print wait to be written */

#endif
