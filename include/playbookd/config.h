/*
 * config.h: the YAML configuration: a tree of nodes that remembers where each value came from, the
 * parameter tables playbooks declare, and the loaded config (NATS, Kubernetes, playbooks, topics).
 */
#ifndef PLAYBOOKD_CONFIG_H
#define PLAYBOOKD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/error.h"

#define CONFIG_MAX_PLAYBOOKS 256
#define CONFIG_MAX_RULES 1024 /* topics and rules together */
#define CONFIG_MAX_BYTES (4 * 1024 * 1024)

enum config_node_kind { NODE_SCALAR, NODE_SEQ, NODE_MAP };

/* One YAML node. The children of a map carry their key; positions are 1-based. */
struct config_node {
    enum config_node_kind kind;
    const char *file;
    char *key;                /* set on the children of a map */
    char *value;              /* scalars, after ${VAR} expansion */
    bool is_null;             /* a plain scalar YAML reads as null: null, Null, NULL, ~ or nothing ("" is not) */
    int line, column;         /* of the value */
    int key_line, key_column; /* of the key, for the children of a map */
    struct config_node *children;
    size_t n_children;
};

/*
 * Reads YAML text into a tree (config_yaml.c); `file` names it in messages and must outlive the tree.
 * expand_env: replace ${VAR} in values (the config file does; a kubeconfig does not).
 */
int config_tree_read(struct config_node **out, const char *file, const char *text, size_t len, bool expand_env,
                     struct error *err);
void config_tree_free(struct config_node *root);

/* Formats "FILE:LINE:COL: key 'K': reason" into err and returns -1. */
int config_node_error(struct error *err, const struct config_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, pointing at the node's key rather than its value ("unknown key"). */
int config_key_error(struct error *err, const struct config_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The child of a map with this key, or NULL. */
const struct config_node *config_node_get(const struct config_node *map, const char *key);

/* Parameter tables, in the manner of Fluent Bit's config_map: a playbook lists what it accepts. */
enum param_type {
    PARAM_STRING,   /* char *, malloc'd; an empty value counts as absent */
    PARAM_INT,      /* long, within [min, max] */
    PARAM_BOOL,     /* bool: true/false, yes/no */
    PARAM_PRIORITY, /* enum priority, by Falco's names */
    PARAM_CHOICE,   /* char *, one of choices */
    PARAM_STRINGS,  /* struct string_list: a sequence of strings, or one string; def is comma-separated */
    PARAM_SECTION,  /* a nested map loaded by the table `section` into the same context */
    PARAM_NODE,     /* const struct config_node *, left for the caller to read */
    PARAM_DURATION, /* long milliseconds, within [min, max]: "500ms", "30s", "1m", "24h" (units required) */
    PARAM_SIZE,     /* long bytes, within [min, max]: "16MiB", "512KiB", "1GiB", "100B", or plain bytes */
};

/*
 * Parses a duration into milliseconds: one or more pieces of digits and a unit (ms, s, m, h), each unit
 * smaller than the one before ("500ms", "30s", "1m", "24h", "1h30m", "0s"); no sign, spaces or fractions.
 * Returns 0; -1 when malformed; -2 when it does not fit in a long.
 */
int config_parse_duration(const char *text, long *ms);
/*
 * Parses a size into bytes: digits, then B, KiB, MiB, GiB or nothing (bytes): "16MiB", "512KiB", "1GiB",
 * "100B", "4096". The 1000-based KB, MB, GB are not accepted. Returns 0; -1 when malformed; -2 when it does
 * not fit in a long.
 */
int config_parse_size(const char *text, long *bytes);

struct string_list {
    char **items;
    size_t n;
};

/* Frees the items and empties the list. */
void string_list_free(struct string_list *list);

struct param_spec {
    const char *name;
    enum param_type type;
    const char *def; /* default as text, or NULL */
    bool required;
    size_t offset;                    /* where the value goes in the playbook's context */
    long min, max;                    /* bounds of PARAM_INT, PARAM_DURATION (ms) and PARAM_SIZE (bytes) */
    const char *const *choices;       /* PARAM_CHOICE: NULL-terminated list */
    const struct param_spec *section; /* PARAM_SECTION */
};

/*
 * Fills ctx from the map `params` (NULL: all defaults) by the table `spec` (ended by a NULL name).
 * Unknown keys (listing the valid ones), missing required keys and bad values are errors naming
 * file:line:column. `type` names the playbook type the map configures (its "type" key is skipped), or
 * is NULL for a section of the config file.
 */
int params_load(const struct param_spec *spec, const char *type, const struct config_node *params, void *ctx,
                struct error *err);
void params_free(const struct param_spec *spec, void *ctx);

/* rate_limit: {count: N, window: DURATION}: at most count actions in any window; count 0: no limit. */
struct rate_limit {
    long count;
    long window_ms;
};

#define RATE_LIMIT_MAX_COUNT 100000
#define RATE_LIMIT_MAX_WINDOW_MS (7L * 24 * 3600 * 1000)

/* The two entries of a rate_limit section's table, for a struct rate_limit at offset `at` in the context. */
#define RATE_LIMIT_PARAMS(at)                                                                                          \
    {.name = "count",                                                                                                  \
     .type = PARAM_INT,                                                                                                \
     .offset = (at) + offsetof(struct rate_limit, count),                                                              \
     .min = 1,                                                                                                         \
     .max = RATE_LIMIT_MAX_COUNT},                                                                                     \
    {                                                                                                                  \
        .name = "window", .type = PARAM_DURATION, .offset = (at) + offsetof(struct rate_limit, window_ms),             \
        .min = 1000, .max = RATE_LIMIT_MAX_WINDOW_MS                                                                   \
    }

/* After params_load: the rate_limit section of the map `parent`, when present, has both count and window. */
int config_rate_limit_check(const struct config_node *parent, const struct rate_limit *rl, struct error *err);

#define JETSTREAM_MAX_BACKOFF 16

/* nats.jetstream: a durable pull consumer instead of core subscriptions (enabled when stream is set). */
struct config_jetstream {
    char *stream, *durable, *subject;
    long max_deliver;
    long ack_wait_ms;
    struct string_list backoff_text; /* as written */
    long backoff_ms[JETSTREAM_MAX_BACKOFF];
    size_t n_backoff;
    bool create_stream; /* create_stream: present */
    struct string_list stream_subjects;
    long max_age_ms;
    char *storage; /* "file" or "memory" */
};

struct config_nats {
    struct string_list servers;
    char *queue_group;
    char *token, *user, *password, *credentials;
    char *nkey; /* a user NKey seed file */
    char *tls_ca, *tls_cert, *tls_key;
    long pending_messages, pending_bytes; /* per core subscription; past them alerts are dropped, counted */
    struct config_jetstream js;
};

struct config_kube {
    char *kubeconfig, *context;
    char *sa_dir;    /* in cluster: the service account's token, ca.crt, namespace */
    long timeout_ms; /* per request */
};

#define HTTP_TOKEN_MIN 16 /* bytes: a bearer token shorter than this is refused as guessable */

/* http.alerts: the alert input (httpin.h). Authenticated by the token, the client certificate, or both. */
struct config_http_alerts {
    char *listen;                             /* "0.0.0.0:8443", or NULL: no alert input */
    char *path;                               /* where alerts are POSTed: "/" by default */
    char *token;                              /* Authorization: Bearer TOKEN, or NULL */
    char *tls_cert, *tls_key, *tls_client_ca; /* PEM files: HTTPS; clients need a certificate by client_ca */
    bool insecure;                            /* no token and no client_ca yet not on loopback: explicit */
};

struct config_http {
    char *listen; /* "0.0.0.0:8080", or NULL: no endpoint */
    struct config_http_alerts alerts;
};

struct config_retry {
    long attempts;           /* tries per action, the first included */
    long initial_backoff_ms; /* doubled after each try */
    long max_backoff_ms;     /* cap, also on Retry-After */
};

struct topic {
    char *pattern;
    size_t *playbooks; /* indices into config.playbooks, in the order to run */
    size_t n_playbooks;
};

struct playbook;
struct playbook_env;
struct rule;

struct config {
    char *file;
    struct config_nats nats;
    struct config_kube kube;
    struct config_retry retry;
    struct config_http http;
    long shutdown_timeout_ms; /* how long a stop lets received alerts finish */
    long workers;             /* threads running actions */
    long queue_size;          /* alerts waiting for a worker, at most */
    bool dry_run;
    struct string_list protected_namespaces;
    struct string_list protected_node_labels; /* protected_nodes.labels: node playbooks skip such nodes */
    struct rate_limit rate_limit;             /* for all mutating playbooks together */
    long expiry_interval_ms;                  /* expiry.interval: how often the sweeper runs (expiry.h) */
    struct playbook **playbooks;
    size_t n_playbooks;
    struct topic *topics;
    size_t n_topics;
    struct rule *rules; /* what is matched, in order: each topic as a rule with its pattern, then `rules:` */
    size_t n_rules;     /* topics included */
    struct string_list subscriptions; /* core NATS: the union of the subject patterns, deduplicated */
    struct playbook_env *env;         /* shared by the playbooks; env->kube is set by the caller */
    bool needs_kube;                  /* some playbook calls the Kubernetes API */
};

/* Loads and validates a config file; dry_run forces dry run on (the --dry-run flag). */
int config_load(struct config **out, const char *path, bool dry_run, struct error *err);
/* The same from memory; `name` stands for the file in messages. */
int config_load_string(struct config **out, const char *name, const char *text, size_t len, bool dry_run,
                       struct error *err);
void config_destroy(struct config *cfg);

/* How many ways to authenticate are set: token, user/password, credentials, nkey (more than one is an error). */
static inline int config_nats_auth_methods(const struct config_nats *n)
{
    return (n->token != NULL) + (n->user != NULL || n->password != NULL) + (n->credentials != NULL) + (n->nkey != NULL);
}

/*
 * Inside the config module (config.c, config_rules.c): a playbook by name, or a type used directly with
 * its defaults; returns its index in cfg->playbooks or -1. And the `rules:` list, after the topics,
 * compiled into cfg->rules, and cfg->subscriptions made from every subject pattern.
 */
int config_playbook_ref(struct config *cfg, const struct config_node *ref, struct error *err);
int config_rules_load(struct config *cfg, const struct config_node *list, struct error *err);
void config_rules_free(struct config *cfg);

/* True when the two NATS sections are the same (a reload keeps the connection). */
bool config_nats_equal(const struct config_nats *a, const struct config_nats *b);
/* True when the two http.alerts sections are the same (a reload keeps the input as it is). */
bool config_http_alerts_equal(const struct config_http_alerts *a, const struct config_http_alerts *b);

#endif
