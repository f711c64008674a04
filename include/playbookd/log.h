/* log.h: one log line per event, as text (key=value) or as one JSON object per line, on stderr. */
#ifndef PLAYBOOKD_LOG_H
#define PLAYBOOKD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Selects the format by name ("text" or "json"); returns 0, or -1 for an unknown name. */
int log_set_format(const char *name);
void log_set_level(enum log_level level);
/* Redirects the log (tests); NULL restores stderr. */
void log_set_stream(FILE *stream);

/*
 * Writes one line: a message, then key/value string pairs ended by NULL. A NULL value skips its key.
 * Values are escaped (control characters, quotes) and capped, so attacker text cannot forge lines.
 *     log_kv(LOG_INFO, "ready", "subscriptions", "3", NULL);
 */
void log_kv(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/*
 * A count that is logged at most once per second: log_throttled adds n and, when a second has passed
 * since the throttle's last line, logs `msg count=N` with the count since that line. log_throttle_flush
 * logs what is left (call it periodically and at exit). Initialise with LOG_THROTTLE_INIT.
 */
struct log_throttle {
    pthread_mutex_t lock;
    unsigned long pending;
    double last_s;
};
#define LOG_THROTTLE_INIT                                                                                              \
    {                                                                                                                  \
        PTHREAD_MUTEX_INITIALIZER, 0, 0                                                                                \
    }
void log_throttled(struct log_throttle *t, enum log_level level, const char *msg, unsigned long n);
void log_throttle_flush(struct log_throttle *t, enum log_level level, const char *msg);

#endif
