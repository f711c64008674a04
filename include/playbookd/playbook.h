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
#define ACTION_TARGET_MAX 320

struct playbook;

/* What an earlier playbook did for the same alert (a slack playbook lists them). */
struct action_record {
    const struct playbook *playbook;
    enum outcome outcome;
    bool transient; /* failed, but another delivery could succeed */
    char reason[ACTION_REASON_MAX];
    char target[ACTION_TARGET_MAX];
};

struct action_result {
    char reason[ACTION_REASON_MAX]; /* for skipped and failed */
    char target[ACTION_TARGET_MAX]; /* what was acted on, "pod default/x" or "node n1", if anything */
    bool transient;                 /* failed, but worth retrying (network, 409 conflicts, 429, 5xx) */
    long retry_after_ms;            /* the server asked to wait this long, or 0 */
    /* Input, set by the dispatcher: the actions already run for this alert, in order. */
    const struct action_record *before;
    size_t n_before;
    unsigned long suppressed; /* actions of this playbook skipped by its cooldown for this key since its last one */
};

struct kube;
struct target;

/* What every playbook of a config shares; main attaches the Kubernetes client after loading. */
struct playbook_env {
    struct kube *kube;
    const struct string_list *protected_namespaces;
    const struct string_list *protected_node_labels; /* node playbooks skip a node with any of these labels */
    /* Some playbook has expire_after (the sweeper runs): a change made without it reads the object first, to
     * take the same change out of playbookd's expiring marks (expiry.h). */
    bool expiry_active;
};

/* One permission a playbook needs of the Kubernetes API, as an RBAC rule grants it (rbac.h prints them). */
struct rbac_rule {
    const char *group;    /* the API group: "" is the core group */
    const char *resource; /* "pods" */
    const char *verb;     /* "get" */
    bool namespaced;      /* granted only in the namespace the instance names (rbac_namespace), by a Role */
};

/*
 * A type declares its parameters; playbook_create allocates ctx_size bytes of context and loads the
 * parameters into it (unknown keys, types, bounds and defaults checked), and playbook_destroy frees them.
 * init and destroy are optional, for what the table cannot say or derive.
 */
struct playbook_type {
    const char *name;             /* "slack" */
    bool needs_kube;              /* calls the Kubernetes API (and so records Events: rbac.c adds that) */
    const struct rbac_rule *rbac; /* what its requests need, ended by a NULL resource; NULL: nothing */
    /* The namespace of its namespaced rules (in rbac or rbac_for), for one configured instance (NULL: none). */
    const char *(*rbac_namespace)(const struct playbook *pb);
    /* Optional: what this instance's parameters add to rbac (a static table, or NULL), e.g. reads that only
     * an option makes. */
    const struct rbac_rule *(*rbac_for)(const struct playbook *pb);
    bool cooldown_per_rule; /* a notification: its cooldown key is the rule and the target */
    bool wants_alert_text;  /* run reads a->text, the alert as received (kept only for such types) */
    bool expires;           /* accepts `expire_after:` (expiry.h): its change carries playbookd's marks */
    /* How run finds its target (target.h), or NULL: dispatch asks it on receipt, so that an alert whose
     * every action would be skipped without a request never waits for a worker. */
    enum outcome (*find_target)(const struct alert *a, const struct playbook_env *env, struct target *t,
                                struct action_result *res);
    const struct param_spec *params; /* ended by a NULL name; NULL: init does it all */
    size_t ctx_size;
    int (*init)(struct playbook *pb, const struct config_node *params, struct error *err);
    enum outcome (*run)(struct playbook *pb, const struct alert *a, struct action_result *res);
    void (*destroy)(struct playbook *pb); /* safe after a failed init */
};

struct playbook {
    const struct playbook_type *type;
    char *name;
    bool dry_run;
    long cooldown_ms;             /* `cooldown:`: a second action on the same target within it is skipped; 0: none */
    struct rate_limit rate_limit; /* `rate_limit:`: at most count actions of this playbook per window; 0: none */
    long expire_after_ms;         /* `expire_after:` (types that expire): undo the change after it; 0: never */
    const struct playbook_env *env;
    void *ctx; /* the type's own state, set by init */
};

/* The registry (playbooks/registry.c): every type, ended by NULL. */
extern const struct playbook_type *const playbook_types[];
const struct playbook_type *playbook_type_find(const char *name);

int playbook_create(struct playbook **out, const char *name, const struct playbook_type *type,
                    const struct config_node *params, bool dry_run, const struct playbook_env *env, struct error *err);
void playbook_destroy(struct playbook *pb);

/*
 * Records what pb did (or would have done, in dry run) to a Pod or Node as a Kubernetes Event, best
 * effort. ns is NULL for a node.
 */
void playbook_record_event(const struct playbook *pb, const struct alert *a, const char *kind, const char *ns,
                           const char *name, const char *uid, const char *action);

/* The outcome for a change the API server accepted: dry-run in dry run, else ok. */
enum outcome playbook_changed(const struct playbook *pb);

const char *outcome_name(enum outcome o); /* "ok", "dry-run", "skipped", "failed" */
/* Fill the reason and return the outcome, for `return action_skip(res, "host event");`. */
enum outcome action_skip(struct action_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum outcome action_fail(struct action_result *res, bool transient, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct kube_response;

/* A failed Kubernetes call as an outcome: "delete pod: HTTP 403 (Forbidden: ...)"; transient for no answer,
 * 429 and 5xx, with Retry-After. (kube.c answers with HTTP facts; the outcome is the playbook side's.) */
enum outcome playbook_kube_failure(const struct kube_response *resp, const char *what, struct action_result *res);
/* GETs path (a read: never dry run). OUTCOME_OK when it answered 200 with JSON, in resp->json; else the
 * failure as playbook_kube_failure words it, under `what` ("get node"). resp is the caller's to free. */
enum outcome playbook_kube_get(struct kube *k, const char *path, const char *what, struct kube_response *resp,
                               struct action_result *res);

#endif
