/*
 * log.c: structured log lines. Each line is built in a local buffer and written with one call under a
 * lock, so lines from different threads never interleave. Values are escaped (text.c: a line is always
 * valid UTF-8 without controls, line separators or bidi overrides) and capped.
 */
#include "playbookd/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "playbookd/text.h"

#define LINE_MAX_BYTES 32768 /* room for a dozen values at their cap, escaped */
#define VALUE_MAX_BYTES 1024 /* a value is cut after this many bytes of output, on a character boundary */

static enum log_format log_format = LOG_FORMAT_TEXT;
static enum log_level log_level = LOG_INFO;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_set_format(const char *name)
{
    if (strcmp(name, "text") == 0)
        log_format = LOG_FORMAT_TEXT;
    else if (strcmp(name, "json") == 0)
        log_format = LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

void log_set_level(enum log_level level)
{
    log_level = level;
}

void log_set_stream(FILE *stream)
{
    log_stream = stream;
}

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep room for "\n\0" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Escapes one value (text_escape_char: quotes, backslashes, controls, C1, line separators, bidi controls,
 * invalid UTF-8 as \ufffd); JSON and text share the rules. Cut after VALUE_MAX_BYTES of output. */
static void put_escaped(struct line *l, const char *v)
{
    size_t start = l->len, n;
    char one[TEXT_ESCAPE_MAX];
    for (;;) {
        size_t used = l->len - start, run = text_plain_run(v);
        if (used >= VALUE_MAX_BYTES || run >= VALUE_MAX_BYTES - used) { /* full: "..." when anything is left */
            size_t room = used >= VALUE_MAX_BYTES ? 0 : VALUE_MAX_BYTES - used;
            put(l, v, room);
            if (v[room] != 0)
                puts_(l, "...");
            return;
        }
        put(l, v, run); /* a run of bytes that need no escape, whole */
        v += run;
        if ((n = text_escape_char(v, one)) == 0)
            return;
        puts_(l, one);
        v += n;
    }
}

/* Text format: a value is quoted when empty, when it holds a space or '=', or when escaping changes it. */
static bool needs_quotes(const char *v)
{
    size_t n;
    char one[TEXT_ESCAPE_MAX];
    if (*v == 0)
        return true;
    for (;;) {
        size_t run = text_plain_run(v);
        if (memchr(v, ' ', run) != NULL || memchr(v, '=', run) != NULL)
            return true;
        v += run;
        if ((n = text_escape_char(v, one)) == 0)
            return false;
        if (strlen(one) != n || memcmp(one, v, n) != 0)
            return true;
        v += n;
    }
}

static void put_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    puts_(l, buf);
}

static void put_field(struct line *l, const char *key, const char *value)
{
    if (log_format == LOG_FORMAT_JSON) {
        puts_(l, ",\"");
        put_escaped(l, key);
        puts_(l, "\":\"");
        put_escaped(l, value);
        puts_(l, "\"");
        return;
    }
    puts_(l, " ");
    puts_(l, key);
    puts_(l, "=");
    if (needs_quotes(value)) {
        puts_(l, "\"");
        put_escaped(l, value);
        puts_(l, "\"");
    } else {
        put_escaped(l, value);
    }
}

static void put_head(struct line *l, enum log_level level, const char *msg)
{
    if (log_format == LOG_FORMAT_JSON) {
        puts_(l, "{\"ts\":\"");
        put_timestamp(l);
        puts_(l, "\",\"level\":\"");
        puts_(l, level_names[level]);
        puts_(l, "\",\"msg\":\"");
        put_escaped(l, msg);
        puts_(l, "\"");
        return;
    }
    put_timestamp(l);
    puts_(l, " ");
    puts_(l, level_names[level]);
    puts_(l, " ");
    put_escaped(l, msg);
}

void log_kv(enum log_level level, const char *msg, ...)
{
    if (level < log_level)
        return;
    struct line l;
    l.len = 0;
    put_head(&l, level, msg);

    va_list ap;
    va_start(ap, msg);
    for (const char *key = va_arg(ap, const char *); key != NULL; key = va_arg(ap, const char *)) {
        const char *value = va_arg(ap, const char *);
        if (value != NULL)
            put_field(&l, key, value);
    }
    va_end(ap);

    if (log_format == LOG_FORMAT_JSON)
        puts_(&l, "}");
    l.buf[l.len++] = '\n';

    pthread_mutex_lock(&log_lock);
    FILE *out = log_stream ? log_stream : stderr;
    fwrite(l.buf, 1, l.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Logs and resets the pending count when force or a second has passed; under t->lock. */
static void throttle_emit(struct log_throttle *t, enum log_level level, const char *msg, bool force)
{
    double now = monotonic_s();
    if (t->pending == 0 || (!force && now - t->last_s < 1.0))
        return;
    char count[24];
    snprintf(count, sizeof(count), "%lu", t->pending);
    t->pending = 0;
    t->last_s = now;
    log_kv(level, msg, "count", count, NULL);
}

void log_throttled(struct log_throttle *t, enum log_level level, const char *msg, unsigned long n)
{
    pthread_mutex_lock(&t->lock);
    t->pending += n;
    throttle_emit(t, level, msg, false);
    pthread_mutex_unlock(&t->lock);
}

void log_throttle_flush(struct log_throttle *t, enum log_level level, const char *msg)
{
    pthread_mutex_lock(&t->lock);
    throttle_emit(t, level, msg, true);
    pthread_mutex_unlock(&t->lock);
}
