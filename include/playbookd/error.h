/* error.h: the one error carrier of playbookd: a fixed buffer that the failing call fills with a reason. */
#ifndef PLAYBOOKD_ERROR_H
#define PLAYBOOKD_ERROR_H

#define ERROR_MAX 512

struct error {
    char msg[ERROR_MAX];
};

/* Formats the reason into err (if err is not NULL) and returns -1, so callers can `return error_set(...)`. */
int error_set(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
