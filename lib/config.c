/*
 * config.c: the playbookd config file: its sections (one table of settings with defaults), the named
 * playbooks, and the topics that map subject patterns to them. The first error stops the load and names
 * file:line:column and the key.
 */
#include "playbookd/config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/httpd.h"
#include "playbookd/kube.h"
#include "playbookd/nkey.h"
#include "playbookd/playbook.h"
#include "playbookd/subject.h"
#include "playbookd/text.h"

#define MAX_NAME 63

/* The config and, while loading, the nodes read later. */
struct config_file {
    struct config cfg; /* first: a struct config * is a struct config_file * */
    struct playbook_env env;
    const struct config_node *playbooks_node, *topics_node, *rules_node;
};

#define NATS_FIELD(f) offsetof(struct config_file, cfg.nats.f)

static const struct param_spec tls_spec[] = {
    {.name = "ca", .type = PARAM_STRING, .offset = NATS_FIELD(tls_ca)},
    {.name = "cert", .type = PARAM_STRING, .offset = NATS_FIELD(tls_cert)},
    {.name = "key", .type = PARAM_STRING, .offset = NATS_FIELD(tls_key)},
    {0},
};

#define JS_FIELD(f) offsetof(struct config_file, cfg.nats.js.f)

static const struct param_spec pending_spec[] = {
    {.name = "messages",
     .type = PARAM_INT,
     .def = "10000",
     .offset = NATS_FIELD(pending_messages),
     .min = 1,
     .max = 10000000},
    {.name = "bytes",
     .type = PARAM_SIZE,
     .def = "16MiB",
     .offset = NATS_FIELD(pending_bytes),
     .min = 1024,
     .max = 1L << 30},
    {0},
};

static const char *const storages[] = {"file", "memory", NULL};

static const struct param_spec create_stream_spec[] = {
    {.name = "subjects", .type = PARAM_STRINGS, .def = "falco.>", .offset = JS_FIELD(stream_subjects)},
    {.name = "max_age",
     .type = PARAM_DURATION,
     .def = "24h",
     .offset = JS_FIELD(max_age_ms),
     .min = 1000,
     .max = 365L * 24 * 3600 * 1000},
    {.name = "storage", .type = PARAM_CHOICE, .def = "file", .offset = JS_FIELD(storage), .choices = storages},
    {0},
};

static const struct param_spec jetstream_spec[] = {
    {.name = "stream", .type = PARAM_STRING, .offset = JS_FIELD(stream)},
    {.name = "durable", .type = PARAM_STRING, .def = "playbookd", .offset = JS_FIELD(durable)},
    {.name = "subject", .type = PARAM_STRING, .def = "falco.>", .offset = JS_FIELD(subject)},
    {.name = "max_deliver", .type = PARAM_INT, .def = "10", .offset = JS_FIELD(max_deliver), .min = 1, .max = 1000},
    {.name = "ack_wait",
     .type = PARAM_DURATION,
     .def = "30s",
     .offset = JS_FIELD(ack_wait_ms),
     .min = 1000,
     .max = 3600000},
    {.name = "backoff", .type = PARAM_STRINGS, .def = "1s,5s,30s", .offset = JS_FIELD(backoff_text)},
    {.name = "create_stream", .type = PARAM_SECTION, .section = create_stream_spec},
    {0},
};

static const struct param_spec nats_spec[] = {
    {.name = "servers", .type = PARAM_STRINGS, .def = "nats://127.0.0.1:4222", .offset = NATS_FIELD(servers)},
    {.name = "queue_group", .type = PARAM_STRING, .offset = NATS_FIELD(queue_group)},
    {.name = "token", .type = PARAM_STRING, .offset = NATS_FIELD(token)},
    {.name = "user", .type = PARAM_STRING, .offset = NATS_FIELD(user)},
    {.name = "password", .type = PARAM_STRING, .offset = NATS_FIELD(password)},
    {.name = "credentials", .type = PARAM_STRING, .offset = NATS_FIELD(credentials)},
    {.name = "nkey", .type = PARAM_STRING, .offset = NATS_FIELD(nkey)},
    {.name = "tls", .type = PARAM_SECTION, .section = tls_spec},
    {.name = "pending", .type = PARAM_SECTION, .section = pending_spec},
    {.name = "jetstream", .type = PARAM_SECTION, .section = jetstream_spec},
    {0},
};

static const struct param_spec kube_spec[] = {
    {.name = "kubeconfig", .type = PARAM_STRING, .offset = offsetof(struct config_file, cfg.kube.kubeconfig)},
    {.name = "context", .type = PARAM_STRING, .offset = offsetof(struct config_file, cfg.kube.context)},
    {.name = "service_account_dir",
     .type = PARAM_STRING,
     .def = "/var/run/secrets/kubernetes.io/serviceaccount",
     .offset = offsetof(struct config_file, cfg.kube.sa_dir)},
    {.name = "timeout_ms",
     .type = PARAM_INT,
     .def = "10000",
     .offset = offsetof(struct config_file, cfg.kube.timeout_ms),
     .min = 100,
     .max = 120000},
    {0},
};

#define RETRY_FIELD(f) offsetof(struct config_file, cfg.retry.f)

static const struct param_spec retry_spec[] = {
    {.name = "attempts", .type = PARAM_INT, .def = "4", .offset = RETRY_FIELD(attempts), .min = 1, .max = 20},
    {.name = "initial_backoff_ms",
     .type = PARAM_INT,
     .def = "200",
     .offset = RETRY_FIELD(initial_backoff_ms),
     .min = 1,
     .max = 60000},
    {.name = "max_backoff_ms",
     .type = PARAM_INT,
     .def = "5000",
     .offset = RETRY_FIELD(max_backoff_ms),
     .min = 1,
     .max = 300000},
    {0},
};

#define ALERTS_FIELD(f) offsetof(struct config_file, cfg.http.alerts.f)

static const struct param_spec alerts_tls_spec[] = {
    {.name = "cert", .type = PARAM_STRING, .offset = ALERTS_FIELD(tls_cert)},
    {.name = "key", .type = PARAM_STRING, .offset = ALERTS_FIELD(tls_key)},
    {.name = "client_ca", .type = PARAM_STRING, .offset = ALERTS_FIELD(tls_client_ca)},
    {0},
};

static const struct param_spec alerts_spec[] = {
    {.name = "listen", .type = PARAM_STRING, .offset = ALERTS_FIELD(listen)},
    {.name = "path", .type = PARAM_STRING, .def = "/", .offset = ALERTS_FIELD(path)},
    {.name = "token", .type = PARAM_STRING, .offset = ALERTS_FIELD(token)},
    {.name = "tls", .type = PARAM_SECTION, .section = alerts_tls_spec},
    {.name = "insecure", .type = PARAM_BOOL, .def = "false", .offset = ALERTS_FIELD(insecure)},
    {0},
};

static const struct param_spec http_spec[] = {
    {.name = "listen", .type = PARAM_STRING, .offset = offsetof(struct config_file, cfg.http.listen)},
    {.name = "alerts", .type = PARAM_SECTION, .section = alerts_spec},
    {0},
};

static const struct param_spec rate_limit_spec[] = {
    RATE_LIMIT_PARAMS(offsetof(struct config_file, cfg.rate_limit)),
    {0},
};

static const struct param_spec protected_nodes_spec[] = {
    {.name = "labels",
     .type = PARAM_STRINGS,
     .def = "node-role.kubernetes.io/control-plane",
     .offset = offsetof(struct config_file, cfg.protected_node_labels)},
    {0},
};

static const struct param_spec expiry_spec[] = {
    {.name = "interval",
     .type = PARAM_DURATION,
     .def = "30s",
     .offset = offsetof(struct config_file, cfg.expiry_interval_ms),
     .min = EXPIRY_INTERVAL_MIN_MS,
     .max = EXPIRY_INTERVAL_MAX_MS},
    {0},
};

static const struct param_spec root_spec[] = {
    {.name = "nats", .type = PARAM_SECTION, .section = nats_spec},
    {.name = "kubernetes", .type = PARAM_SECTION, .section = kube_spec},
    {.name = "retry", .type = PARAM_SECTION, .section = retry_spec},
    {.name = "http", .type = PARAM_SECTION, .section = http_spec},
    {.name = "shutdown_timeout_ms",
     .type = PARAM_INT,
     .def = "20000",
     .offset = offsetof(struct config_file, cfg.shutdown_timeout_ms),
     .min = 0,
     .max = 600000},
    {.name = "workers",
     .type = PARAM_INT,
     .def = "32",
     .offset = offsetof(struct config_file, cfg.workers),
     .min = 1,
     .max = 256},
    {.name = "queue_size",
     .type = PARAM_INT,
     .def = "4096",
     .offset = offsetof(struct config_file, cfg.queue_size),
     .min = 1,
     .max = 1000000},
    {.name = "dry_run", .type = PARAM_BOOL, .def = "false", .offset = offsetof(struct config_file, cfg.dry_run)},
    {.name = "protected_namespaces",
     .type = PARAM_STRINGS,
     .def = "kube-system",
     .offset = offsetof(struct config_file, cfg.protected_namespaces)},
    {.name = "protected_nodes", .type = PARAM_SECTION, .section = protected_nodes_spec},
    {.name = "rate_limit", .type = PARAM_SECTION, .section = rate_limit_spec},
    {.name = "expiry", .type = PARAM_SECTION, .section = expiry_spec},
    {.name = "playbooks", .type = PARAM_NODE, .offset = offsetof(struct config_file, playbooks_node)},
    {.name = "topics", .type = PARAM_NODE, .offset = offsetof(struct config_file, topics_node)},
    {.name = "rules", .type = PARAM_NODE, .offset = offsetof(struct config_file, rules_node)},
    {0},
};

static bool playbook_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= MAX_NAME &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n;
}

/* The seed file is read now, so that a bad one stops the start (and --check), not the first connection. */
static int check_nkey(const struct config_node *node, const char *path, struct error *err)
{
    struct nkey *k = NULL;
    struct error why;
    if (path == NULL)
        return 0;
    if (nkey_load(&k, path, &why) != 0)
        return config_node_error(err, config_node_get(node, "nkey"), "%s", why.msg);
    nkey_destroy(k);
    return 0;
}

static int check_nats(const struct config_node *root, const struct config_nats *n, struct error *err)
{
    const struct config_node *node = config_node_get(root, "nats");
    if (config_nats_auth_methods(n) > 1)
        return config_node_error(err, node, "choose one of token, user/password, credentials or nkey");
    if ((n->user == NULL) != (n->password == NULL))
        return config_node_error(err, node, "user and password go together");
    if ((n->tls_cert == NULL) != (n->tls_key == NULL))
        return config_node_error(err, config_node_get(node, "tls"), "tls cert and key go together");
    if (n->servers.n == 0)
        return config_node_error(err, node, "servers: at least one server is needed");
    return check_nkey(node, n->nkey, err);
}

/* nats.jetstream: a stream name, and each backoff a duration (kept in milliseconds). */
static int check_jetstream(const struct config_node *root, struct config_jetstream *js, struct error *err)
{
    const struct config_node *node = config_node_get(config_node_get(root, "nats"), "jetstream");
    if (node == NULL)
        return 0;
    if (js->stream == NULL)
        return config_node_error(err, node, "jetstream needs 'stream': the stream that holds the alerts");
    const struct config_node *backoff = config_node_get(node, "backoff");
    if (js->backoff_text.n == 0 || js->backoff_text.n > JETSTREAM_MAX_BACKOFF)
        return config_node_error(err, backoff ? backoff : node, "backoff: 1 to %d durations", JETSTREAM_MAX_BACKOFF);
    for (size_t i = 0; i < js->backoff_text.n; i++)
        if (config_parse_duration(js->backoff_text.items[i], &js->backoff_ms[i]) != 0 ||
            js->backoff_ms[i] > 24L * 3600 * 1000)
            return config_node_error(err, backoff ? backoff : node,
                                     "backoff: '%.32s' is not a duration up to 24h (such as 500ms, 30s, 1m)",
                                     js->backoff_text.items[i]);
    js->n_backoff = js->backoff_text.n;
    js->create_stream = config_node_get(node, "create_stream") != NULL;
    return 0;
}

static int check_namespaces(const struct config_node *root, const struct string_list *ns, struct error *err)
{
    for (size_t i = 0; i < ns->n; i++)
        if (!kube_name_label(ns->items[i]))
            return config_node_error(err, config_node_get(root, "protected_namespaces"),
                                     "'%.64s' is not a valid namespace name", ns->items[i]);
    return 0;
}

/* rate_limit has both keys; each protected node label is a label key ([prefix/]name). */
static int check_limits(const struct config_node *root, const struct config *cfg, struct error *err)
{
    const struct config_node *labels = config_node_get(config_node_get(root, "protected_nodes"), "labels");
    for (size_t i = 0; i < cfg->protected_node_labels.n; i++)
        if (!kube_qualified_name(cfg->protected_node_labels.items[i]))
            return config_node_error(
                err, labels && labels->kind == NODE_SEQ && i < labels->n_children ? &labels->children[i] : labels,
                "protected_nodes: '%.64s' is not a label key ([DNS-1123 subdomain/]name, name 1 to 63 of "
                "[A-Za-z0-9-_.])",
                cfg->protected_node_labels.items[i]);
    return config_rate_limit_check(root, &cfg->rate_limit, err);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

static int port_of(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                          : ((const struct sockaddr_in *)a)->sin_port);
}

/* http.alerts: where it listens and how it authenticates. The token is a secret: never in a message. */
static int check_alerts(const struct config_node *http_node, const struct config_http *http, struct error *err)
{
    const struct config_http_alerts *a = &http->alerts;
    const struct config_node *node = config_node_get(http_node, "alerts");
    const struct config_node *listen = config_node_get(node, "listen"), *tls = config_node_get(node, "tls");
    struct sockaddr_storage addr, probes;
    struct error why;
    if (node == NULL)
        return 0;
    if (a->listen == NULL)
        return config_node_error(err, node, "alerts needs 'listen', such as \"0.0.0.0:8443\"");
    if (httpd_parse_listen(a->listen, &addr, &why) != 0)
        return config_node_error(err, listen, "%s", why.msg);
    if (http->listen != NULL && httpd_parse_listen(http->listen, &probes, &why) == 0 && port_of(&addr) != 0 &&
        port_of(&addr) == port_of(&probes))
        return config_node_error(err, listen, "the alert input needs a port of its own, not http.listen's");
    if (a->path[0] != '/' || !printable(a->path))
        return config_node_error(err, config_node_get(node, "path"), "a path starts with '/' and has no spaces");
    if (a->token != NULL && (strlen(a->token) < HTTP_TOKEN_MIN || !printable(a->token)))
        return config_node_error(err, config_node_get(node, "token"),
                                 "a token is at least %d printable characters without spaces (it is not shown)",
                                 HTTP_TOKEN_MIN);
    if ((a->tls_cert == NULL) != (a->tls_key == NULL))
        return config_node_error(err, tls ? tls : node, "tls cert and key go together");
    if (a->tls_client_ca != NULL && a->tls_cert == NULL)
        return config_node_error(err, tls, "tls client_ca needs the server's cert and key");
    if (a->token == NULL && a->tls_client_ca == NULL && !a->insecure && !httpd_loopback(&addr))
        return config_node_error(err, listen,
                                 "'%.64s' is not a loopback address and nothing authenticates the clients: set a token "
                                 "or tls.client_ca, or insecure: true to take alerts from anyone who can connect",
                                 a->listen);
    return 0;
}

static int check_http(const struct config_node *root, const struct config_http *http, struct error *err)
{
    struct sockaddr_storage addr;
    struct error why;
    const struct config_node *node = config_node_get(root, "http");
    if (http->listen != NULL && httpd_parse_listen(http->listen, &addr, &why) != 0)
        return config_node_error(err, config_node_get(node, "listen"), "%s", why.msg);
    return check_alerts(node, http, err);
}

static int add_playbook(struct config *cfg, struct playbook *pb, const struct config_node *at, struct error *err)
{
    if (cfg->n_playbooks >= CONFIG_MAX_PLAYBOOKS) {
        playbook_destroy(pb);
        return config_node_error(err, at, "too many playbooks (limit %d)", CONFIG_MAX_PLAYBOOKS);
    }
    struct playbook **grown = realloc(cfg->playbooks, (cfg->n_playbooks + 1) * sizeof(*grown));
    if (grown == NULL) {
        playbook_destroy(pb);
        return error_set(err, "out of memory");
    }
    cfg->playbooks = grown;
    cfg->playbooks[cfg->n_playbooks++] = pb;
    cfg->needs_kube = cfg->needs_kube || pb->type->needs_kube;
    return 0;
}

static void type_names(char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (const struct playbook_type *const *t = playbook_types; *t != NULL && n < size; t++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", (*t)->name);
}

static int load_playbook(struct config *cfg, const struct config_node *def, struct error *err)
{
    char types[256];
    if (!playbook_name_ok(def->key))
        return config_node_error(err, def, "a playbook name is 1 to %d of [A-Za-z0-9_.-]", MAX_NAME);
    if (def->kind != NODE_MAP)
        return config_node_error(err, def, "a playbook is a map with a type and its parameters");
    const struct config_node *type = config_node_get(def, "type");
    if (type == NULL)
        return config_node_error(err, def, "missing 'type'");
    const struct playbook_type *t = type->kind == NODE_SCALAR ? playbook_type_find(type->value) : NULL;
    if (t == NULL) {
        type_names(types, sizeof(types));
        return config_node_error(err, type, "unknown playbook type (valid: %s)", types);
    }
    struct playbook *pb;
    if (playbook_create(&pb, def->key, t, def, cfg->dry_run, cfg->env, err) != 0)
        return -1;
    return add_playbook(cfg, pb, def, err);
}

static int load_playbooks(struct config *cfg, const struct config_node *map, struct error *err)
{
    if (map == NULL)
        return 0;
    if (map->kind != NODE_MAP)
        return config_node_error(err, map, "expected a map of named playbooks");
    for (size_t i = 0; i < map->n_children; i++)
        if (load_playbook(cfg, &map->children[i], err) != 0)
            return -1;
    return 0;
}

static int playbook_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        if (strcmp(cfg->playbooks[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* A playbook by name, or else a type used directly with its defaults (one instance per type). */
int config_playbook_ref(struct config *cfg, const struct config_node *ref, struct error *err)
{
    int i = playbook_index(cfg, ref->value);
    if (i >= 0)
        return i;
    const struct playbook_type *t = playbook_type_find(ref->value);
    if (t == NULL) {
        char types[256];
        type_names(types, sizeof(types));
        return config_node_error(err, ref, "'%.64s' is neither a playbook defined under 'playbooks' nor a type (%s)",
                                 ref->value, types);
    }
    struct playbook *pb;
    struct error why;
    if (playbook_create(&pb, t->name, t, NULL, cfg->dry_run, cfg->env, &why) != 0)
        return config_node_error(err, ref, "type %s used with its defaults: %s; define it under 'playbooks'", t->name,
                                 why.msg);
    if (add_playbook(cfg, pb, ref, err) != 0)
        return -1;
    return (int)cfg->n_playbooks - 1;
}

static int load_topic(struct config *cfg, struct topic *topic, const struct config_node *def, struct error *err)
{
    struct error why;
    if (subject_pattern_check(def->key, &why) != 0)
        return config_node_error(err, def, "%s", why.msg);
    topic->pattern = strdup(def->key);
    size_t n = def->kind == NODE_SEQ ? def->n_children : 1;
    topic->playbooks = calloc(n, sizeof(*topic->playbooks));
    if (topic->pattern == NULL || topic->playbooks == NULL)
        return error_set(err, "out of memory");
    if (def->kind == NODE_MAP || (def->kind == NODE_SEQ && n == 0) || (def->kind == NODE_SCALAR && !*def->value))
        return config_node_error(err, def, "expected a list of playbooks");
    for (size_t i = 0; i < n; i++) {
        const struct config_node *ref = def->kind == NODE_SEQ ? &def->children[i] : def;
        if (ref->kind != NODE_SCALAR)
            return config_node_error(err, ref, "expected a playbook name");
        int idx = config_playbook_ref(cfg, ref, err);
        if (idx < 0)
            return -1;
        topic->playbooks[topic->n_playbooks++] = (size_t)idx;
    }
    return 0;
}

/* The topics; none is an error unless `rules:` has some (has_rules). */
static int load_topics(struct config *cfg, const struct config_node *root, const struct config_node *map,
                       bool has_rules, struct error *err)
{
    if (has_rules && (map == NULL || (map->kind == NODE_MAP && map->n_children == 0)))
        return 0;
    if (map == NULL || (map->kind == NODE_MAP && map->n_children == 0))
        return config_node_error(err, map ? map : root,
                                 "no topics or rules: map at least one subject pattern to playbooks");
    if (map->kind != NODE_MAP)
        return config_node_error(err, map, "expected a map of subject patterns to lists of playbooks");
    cfg->topics = calloc(map->n_children, sizeof(*cfg->topics));
    if (cfg->topics == NULL)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < map->n_children; i++) {
        cfg->n_topics++;
        if (load_topic(cfg, &cfg->topics[i], &map->children[i], err) != 0)
            return -1;
    }
    return 0;
}

static int load_tree(struct config_file *cf, const struct config_node *root, bool dry_run, struct error *err)
{
    struct config *cfg = &cf->cfg;
    if (root->kind != NODE_MAP)
        return config_node_error(err, root, "the config must be a map");
    if (params_load(root_spec, NULL, root, cf, err) != 0)
        return -1;
    cfg->dry_run = cfg->dry_run || dry_run;
    cf->env.protected_namespaces = &cfg->protected_namespaces;
    cf->env.protected_node_labels = &cfg->protected_node_labels;
    cfg->env = &cf->env;
    if (check_nats(root, &cfg->nats, err) != 0 || check_jetstream(root, &cfg->nats.js, err) != 0 ||
        check_namespaces(root, &cfg->protected_namespaces, err) != 0 || check_http(root, &cfg->http, err) != 0 ||
        check_limits(root, cfg, err) != 0)
        return -1;
    if (load_playbooks(cfg, cf->playbooks_node, err) != 0)
        return -1;
    const struct config_node *rules = cf->rules_node;
    if (load_topics(cfg, root, cf->topics_node, rules && (rules->kind != NODE_SEQ || rules->n_children > 0), err) != 0)
        return -1;
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        cf->env.expiry_active = cf->env.expiry_active || cfg->playbooks[i]->expire_after_ms > 0;
    return config_rules_load(cfg, rules, err);
}

int config_load_string(struct config **out, const char *name, const char *text, size_t len, bool dry_run,
                       struct error *err)
{
    struct config_node *root = NULL;
    struct config_file *cf = calloc(1, sizeof(*cf));
    *out = NULL;
    if (cf == NULL || (cf->cfg.file = strdup(name)) == NULL) {
        free(cf);
        return error_set(err, "out of memory");
    }
    int rc = config_tree_read(&root, cf->cfg.file, text, len, true, err);
    if (rc == 0)
        rc = load_tree(cf, root, dry_run, err);
    cf->playbooks_node = cf->topics_node = cf->rules_node = NULL;
    config_tree_free(root);
    if (rc != 0) {
        config_destroy(&cf->cfg);
        return -1;
    }
    *out = &cf->cfg;
    return 0;
}

int config_load(struct config **out, const char *path, bool dry_run, struct error *err)
{
    size_t len = 0;
    char *text = text_read_file(path, CONFIG_MAX_BYTES, &len, err);
    if (text == NULL)
        return -1;
    int rc = config_load_string(out, path, text, len, dry_run, err);
    free(text);
    return rc;
}

void config_destroy(struct config *cfg)
{
    if (cfg == NULL)
        return;
    params_free(root_spec, cfg);
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        playbook_destroy(cfg->playbooks[i]);
    free(cfg->playbooks);
    for (size_t i = 0; i < cfg->n_topics; i++) {
        free(cfg->topics[i].pattern);
        free(cfg->topics[i].playbooks);
    }
    free(cfg->topics);
    config_rules_free(cfg);
    free(cfg->file);
    free(cfg);
}

static bool same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool config_nats_equal(const struct config_nats *a, const struct config_nats *b)
{
    if (a->servers.n != b->servers.n)
        return false;
    for (size_t i = 0; i < a->servers.n; i++)
        if (strcmp(a->servers.items[i], b->servers.items[i]) != 0)
            return false;
    return same_string(a->queue_group, b->queue_group) && same_string(a->token, b->token) &&
           same_string(a->user, b->user) && same_string(a->password, b->password) &&
           same_string(a->credentials, b->credentials) && same_string(a->nkey, b->nkey) &&
           same_string(a->tls_ca, b->tls_ca) && same_string(a->tls_cert, b->tls_cert) &&
           same_string(a->tls_key, b->tls_key) && same_string(a->js.stream, b->js.stream) &&
           same_string(a->js.durable, b->js.durable) && same_string(a->js.subject, b->js.subject);
}

bool config_http_alerts_equal(const struct config_http_alerts *a, const struct config_http_alerts *b)
{
    return same_string(a->listen, b->listen) && same_string(a->path, b->path) && same_string(a->token, b->token) &&
           same_string(a->tls_cert, b->tls_cert) && same_string(a->tls_key, b->tls_key) &&
           same_string(a->tls_client_ca, b->tls_client_ca) && a->insecure == b->insecure;
}
