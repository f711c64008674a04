/*
 * playbook.h: the playbook interface. A playbook type is a read-only descriptor; a playbook is a named,
 * configured instance of one. `run` acts once and reports; the dispatcher owns retries, dry run and logs.
 */
#ifndef PLAYBOOKD_PLAYBOOK_H
#define PLAYBOOKD_PLAYBOOK_H

#include <stdbool.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/error.h"

enum outcome { OUTCOME_OK, OUTCOME_DRY_RUN, OUTCOME_SKIPPED, OUTCOME_FAILED, OUTCOME_COUNT };

#define ACTION_REASON_MAX 256

struct action_result {
    char reason[ACTION_REASON_MAX]; /* for skipped and failed */
    bool transient;                 /* failed, but worth retrying (network, 429, 5xx) */
    long retry_after_ms;            /* the server asked to wait this long, or 0 */
};

struct playbook;

struct playbook_type {
    const char *name; /* "slack" */
    int (*init)(struct playbook *pb, const struct config_node *params, struct error *err);
    enum outcome (*run)(struct playbook *pb, const struct alert *a, struct action_result *res);
    void (*destroy)(struct playbook *pb); /* safe after a failed init */
};

struct playbook {
    const struct playbook_type *type;
    char *name;
    bool dry_run;
    void *ctx; /* the type's own state, set by init */
};

/* The registry (playbooks/registry.c): every type, ended by NULL. */
extern const struct playbook_type *const playbook_types[];
const struct playbook_type *playbook_type_find(const char *name);

int playbook_create(struct playbook **out, const char *name, const struct playbook_type *type,
                    const struct config_node *params, bool dry_run, struct error *err);
void playbook_destroy(struct playbook *pb);

const char *outcome_name(enum outcome o); /* "ok", "dry-run", "skipped", "failed" */
/* Fill the reason and return the outcome, for `return action_skip(res, "host event");`. */
enum outcome action_skip(struct action_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum outcome action_fail(struct action_result *res, bool transient, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
