/* alert.h: a Falco alert parsed from its JSON form, read-only once parsed; fields point into the tree. */
#ifndef PLAYBOOKD_ALERT_H
#define PLAYBOOKD_ALERT_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/error.h"

#define ALERT_MAX_BYTES (1024 * 1024) /* the largest message accepted, as NATS's default max_payload */
#define ALERT_MAX_RULE 1024

/* Falco's priorities, most severe first, numbered as Falco's gRPC enum and syslog do. */
enum priority {
    PRIORITY_EMERGENCY,
    PRIORITY_ALERT,
    PRIORITY_CRITICAL,
    PRIORITY_ERROR,
    PRIORITY_WARNING,
    PRIORITY_NOTICE,
    PRIORITY_INFORMATIONAL,
    PRIORITY_DEBUG,
    PRIORITY_COUNT
};

/* Parses a priority name, case-insensitively; "Info" is Informational. Returns 0 or -1. */
int priority_parse(const char *name, enum priority *out);
const char *priority_name(enum priority p);  /* "Notice" */
const char *priority_token(enum priority p); /* "notice", as in subjects */

struct cJSON;

struct alert {
    struct cJSON *root; /* owns the parsed tree */
    const char *rule;   /* never NULL once parsed */
    enum priority priority;
    const char *output;         /* "" when absent */
    const char *time;           /* "" when absent; RFC 3339 */
    const char *hostname;       /* "" when absent */
    const char *source;         /* "" when absent */
    const struct cJSON *tags;   /* array of strings, or NULL */
    const struct cJSON *fields; /* output_fields object, or NULL */
    char time_buf[48];          /* time rendered from gRPC's {seconds, nanos} form */
    /* The message as received (valid UTF-8, no NUL), for a playbook that keeps the alert itself (evidence):
     * set by the dispatcher only when such a playbook runs, else NULL. Re-printing root would lose the
     * digits of large integers (evt.time in nanoseconds), which cJSON holds as doubles. */
    const char *text;
    size_t text_len;
};

/* Parses one alert. On failure returns -1 with the reason in err, and a holds nothing to free. */
int alert_parse(struct alert *a, const char *data, size_t len, struct error *err);
void alert_free(struct alert *a);

/*
 * The output field `key` as text: a string as is, a number or boolean rendered into buf; NULL when the
 * field is absent, null, or an object or array. Falco sends all of these kinds.
 */
const char *alert_field(const struct alert *a, const char *key, char *buf, size_t size);

#endif
