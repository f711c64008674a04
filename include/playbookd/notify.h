/*
 * notify.h: what the notification playbooks (slack, teams, webhook) share: the facts of an alert as
 * labelled fields, the title, the list of what earlier playbooks did, the cooldown's count, the
 * webhook-URL check at load, and the POST whose answer becomes an outcome. Each channel escapes the text
 * for its own markup; nothing here is escaped.
 */
#ifndef PLAYBOOKD_NOTIFY_H
#define PLAYBOOKD_NOTIFY_H

#include <stddef.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/playbook.h"

#define NOTIFY_OUTPUT_MAX 3000 /* bytes of Falco's output shown; chat services cut long messages anyway */
#define NOTIFY_FIELD_MAX 256   /* bytes of any other alert field shown */
#define NOTIFY_FACTS_MAX 9
#define NOTIFY_ACTIONS_MAX 2048 /* bytes of the list of earlier actions */
#define NOTIFY_LINE_MAX (ACTION_REASON_MAX + ACTION_TARGET_MAX + 128)

struct notify_fact {
    const char *title; /* "Rule" */
    const char *value; /* never NULL nor empty */
};

/* The labelled fields of an alert, those it has: Rule, Priority, Time, Hostname, Namespace, Pod,
 * Container (name, else id), Image, Source. Values point into the alert or into bufs. */
struct notify_facts {
    struct notify_fact items[NOTIFY_FACTS_MAX];
    size_t n;
    char bufs[4][64]; /* output fields that are numbers or booleans, rendered */
};

void notify_alert_facts(const struct alert *a, struct notify_facts *f);

/* "[DRY RUN] Falco alert: <bold>rule<bold> (Notice)" into buf; rule is as the channel shows it (escaped),
 * dry_mark is how the channel writes "[DRY RUN] " (used only in dry run). Returns buf. */
char *notify_title(char *buf, size_t size, const struct playbook *pb, const struct alert *a, const char *rule,
                   const char *bold, const char *dry_mark);

/* Action i of those already run for this alert: "kill (delete-pod): ok on pod default/x". Returns buf. */
char *notify_action_line(const struct action_record *r, char *buf, size_t size);
/* Every earlier action, one line each, separated by '\n'; "" when none. Returns buf. */
char *notify_actions_text(const struct action_result *res, char *buf, size_t size);
/* After a cooldown window: "3 similar alerts not posted during the 60s cooldown"; NULL when none. */
const char *notify_suppressed_text(const struct playbook *pb, const struct action_result *res, char *buf, size_t size);

/* OUTCOME_OK when the alert is at min_priority or above, else skipped with the reason. */
enum outcome notify_priority_check(const struct alert *a, enum priority min_priority, struct action_result *res);

/* At load: the URL in params' key is https, or http to loopback; else an error at its file:line:column. */
int notify_url_check(const struct config_node *params, const char *key, const char *url, struct error *err);

/*
 * POSTs the JSON body (malloc'd, freed here; NULL: out of memory) with extra "Name: value" header lines,
 * which the caller checked, and maps the answer: 2xx ok; else failed (HTTP N), transient on 429 and 5xx
 * with the server's Retry-After; a transport error is transient. The URL and headers never appear in the
 * reason.
 */
enum outcome notify_post(const char *url, const char *const *headers, size_t n_headers, char *body, long timeout_ms,
                         struct action_result *res);

/* The parameters every notification takes, for a context struct T with the fields min_priority and
 * timeout_ms: min_priority (default Debug) and timeout_ms (default 10000, 100 to 60000). */
#define NOTIFY_PARAMS(T)                                                                                               \
    {.name = "min_priority", .type = PARAM_PRIORITY, .def = "Debug", .offset = offsetof(T, min_priority)},             \
    {                                                                                                                  \
        .name = "timeout_ms", .type = PARAM_INT, .def = "10000", .offset = offsetof(T, timeout_ms), .min = 100,        \
        .max = 60000                                                                                                   \
    }

#endif
