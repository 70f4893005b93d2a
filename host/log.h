/* Logging: warnings and errors go to stderr with a "lubeck[pid]:" prefix; access
 * lines go to stdout. stdout is flushed a tenth of a second after something was
 * written to it (the host's log timer), so a busy host writes access lines in
 * batches and an idle one almost at once. */
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
void log_flush(void);
int log_pending(void);   /* stdout holds unflushed bytes */

#endif
