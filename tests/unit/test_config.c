/* test_config.c: unit tests for config_load_string: defaults, sharing of playbooks, ${VAR}, and every error's text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "playbookd/config.h"
#include "playbookd/playbook.h"

#include "config_check.h"

#define HOOK "https://hooks.slack.com/services/T000/B000/XXXX"

/* The smallest useful config: one Slack playbook on every alert. */
static const char minimal[] = "playbooks:\n"
                              "  notify: {type: slack, webhook_url: \"" HOOK "\"}\n"
                              "topics:\n"
                              "  \"falco.*.*\": [notify]\n";

static void test_defaults(void **state)
{
    (void)state;
    struct config *cfg = load_config(minimal, false);
    assert_string_equal(cfg->file, NAME);
    assert_int_equal(cfg->nats.servers.n, 1);
    assert_string_equal(cfg->nats.servers.items[0], "nats://127.0.0.1:4222");
    assert_null(cfg->nats.queue_group);
    assert_null(cfg->nats.token);
    assert_null(cfg->nats.user);
    assert_null(cfg->nats.password);
    assert_null(cfg->nats.credentials);
    assert_null(cfg->nats.tls_ca);
    assert_null(cfg->nats.tls_cert);
    assert_null(cfg->nats.tls_key);
    assert_null(cfg->kube.kubeconfig);
    assert_null(cfg->kube.context);
    assert_int_equal(cfg->protected_namespaces.n, 1);
    assert_string_equal(cfg->protected_namespaces.items[0], "kube-system");
    assert_false(cfg->dry_run);
    assert_int_equal(cfg->retry.attempts, 4);
    assert_int_equal(cfg->retry.initial_backoff_ms, 200);
    assert_int_equal(cfg->retry.max_backoff_ms, 5000);
    assert_int_equal(cfg->n_playbooks, 1);
    assert_string_equal(cfg->playbooks[0]->name, "notify");
    assert_string_equal(cfg->playbooks[0]->type->name, "slack");
    assert_false(cfg->playbooks[0]->dry_run);
    assert_int_equal(cfg->n_topics, 1);
    assert_string_equal(cfg->topics[0].pattern, "falco.*.*");
    assert_int_equal(cfg->topics[0].n_playbooks, 1);
    assert_int_equal(cfg->topics[0].playbooks[0], 0);
    config_destroy(cfg);
    config_destroy(NULL); /* a no-op */
}

static void test_every_setting(void **state)
{
    (void)state;
    struct config *cfg = load_config("nats:\n"
                                     "  servers: [nats://a:4222, \"tls://b:4443\"]\n"
                                     "  queue_group: playbookd\n"
                                     "  token: tok\n"
                                     "  tls: {ca: /ca.pem, cert: /cert.pem, key: /key.pem}\n"
                                     "kubernetes:\n"
                                     "  kubeconfig: /kubeconfig\n"
                                     "  context: prod\n"
                                     "retry: {attempts: 20, initial_backoff_ms: 1, max_backoff_ms: 300000}\n"
                                     "dry_run: yes\n"
                                     "protected_namespaces: [kube-system, falco, a-1]\n"
                                     "playbooks:\n"
                                     "  notify:\n"
                                     "    type: slack\n"
                                     "    webhook_url: " HOOK "\n"
                                     "    channel: \"#alerts\"\n"
                                     "    min_priority: Notice\n"
                                     "topics:\n"
                                     "  falco.>: notify\n",
                                     false);
    assert_int_equal(cfg->nats.servers.n, 2);
    assert_string_equal(cfg->nats.servers.items[0], "nats://a:4222");
    assert_string_equal(cfg->nats.servers.items[1], "tls://b:4443");
    assert_string_equal(cfg->nats.queue_group, "playbookd");
    assert_string_equal(cfg->nats.token, "tok");
    assert_string_equal(cfg->nats.tls_ca, "/ca.pem");
    assert_string_equal(cfg->nats.tls_cert, "/cert.pem");
    assert_string_equal(cfg->nats.tls_key, "/key.pem");
    assert_string_equal(cfg->kube.kubeconfig, "/kubeconfig");
    assert_string_equal(cfg->kube.context, "prod");
    assert_int_equal(cfg->retry.attempts, 20);
    assert_int_equal(cfg->retry.initial_backoff_ms, 1);
    assert_int_equal(cfg->retry.max_backoff_ms, 300000);
    assert_true(cfg->dry_run);
    assert_true(cfg->playbooks[0]->dry_run);
    assert_int_equal(cfg->protected_namespaces.n, 3);
    assert_string_equal(cfg->protected_namespaces.items[2], "a-1");
    /* A single name stands for a one-item list. */
    assert_int_equal(cfg->n_topics, 1);
    assert_int_equal(cfg->topics[0].n_playbooks, 1);
    config_destroy(cfg);

    /* user/password and a single server as a plain string. */
    cfg = load_config("nats: {servers: nats://x:1, user: u, password: p}\n"
                      "playbooks: {n: {type: slack, webhook_url: \"" HOOK "\"}}\n"
                      "topics: {a: [n]}\n",
                      false);
    assert_int_equal(cfg->nats.servers.n, 1);
    assert_string_equal(cfg->nats.servers.items[0], "nats://x:1");
    assert_string_equal(cfg->nats.user, "u");
    assert_string_equal(cfg->nats.password, "p");
    config_destroy(cfg);
}

static void test_named_playbook_shared(void **state)
{
    (void)state;
    struct config *cfg = load_config("playbooks:\n"
                                     "  notify: {type: slack, webhook_url: \"" HOOK "\"}\n"
                                     "  local: {type: slack, webhook_url: \"http://127.0.0.1:8080/hook\"}\n"
                                     "topics:\n"
                                     "  \"falco.*.*\": [notify]\n"
                                     "  falco.notice.terminal_shell_in_container: [local, notify]\n",
                                     false);
    assert_int_equal(cfg->n_playbooks, 2);
    assert_string_equal(cfg->playbooks[0]->name, "notify");
    assert_string_equal(cfg->playbooks[1]->name, "local");
    assert_int_equal(cfg->n_topics, 2);
    assert_string_equal(cfg->topics[1].pattern, "falco.notice.terminal_shell_in_container");
    assert_int_equal(cfg->topics[1].n_playbooks, 2);
    assert_int_equal(cfg->topics[1].playbooks[0], 1);
    /* The same instance, reached through both topics. */
    assert_int_equal(cfg->topics[0].playbooks[0], 0);
    assert_int_equal(cfg->topics[1].playbooks[1], 0);
    assert_ptr_equal(cfg->playbooks[cfg->topics[0].playbooks[0]], cfg->playbooks[cfg->topics[1].playbooks[1]]);
    config_destroy(cfg);
}

/* A registered type that initialises with its defaults, or NULL if every type needs parameters. */
static const struct playbook_type *type_with_defaults(void)
{
    for (const struct playbook_type *const *t = playbook_types; *t != NULL; t++) {
        struct playbook *pb;
        struct error err;
        if (playbook_create(&pb, (*t)->name, *t, NULL, false, NULL, &err) == 0) {
            playbook_destroy(pb);
            return *t;
        }
    }
    return NULL;
}

static void test_type_used_directly_shared(void **state)
{
    (void)state;
    const struct playbook_type *t = type_with_defaults();
    if (t == NULL) {
        print_message("note: no registered playbook type (%s) works with its defaults\n", type_list());
        skip();
    }
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "playbooks:\n"
             "  notify: {type: slack, webhook_url: \"" HOOK "\"}\n"
             "topics:\n"
             "  \"falco.*.*\": [notify, %s]\n"
             "  falco.notice.terminal_shell_in_container: [%s]\n",
             t->name, t->name);
    struct config *cfg = load_config(yaml, false);
    assert_int_equal(cfg->n_playbooks, 2);
    assert_string_equal(cfg->playbooks[1]->name, t->name);
    assert_ptr_equal(cfg->playbooks[1]->type, t);
    assert_int_equal(cfg->topics[0].playbooks[1], 1);
    assert_int_equal(cfg->topics[1].playbooks[0], 1);
    config_destroy(cfg);
}

static void test_type_slack_needs_parameters(void **state)
{
    (void)state;
    /* slack has a required parameter, so it cannot be used directly in a topic. */
    check_error("topics:\n  falco.>: [slack]\n",
                NAME ":2:13: type slack used with its defaults: missing required parameter 'webhook_url'; "
                     "define it under 'playbooks'");
}

static void test_dry_run_argument(void **state)
{
    (void)state;
    struct config *cfg = load_config(minimal, true);
    assert_true(cfg->dry_run);
    assert_true(cfg->playbooks[0]->dry_run);
    config_destroy(cfg);

    /* The flag cannot be undone by the file. */
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "dry_run: false\n%s", minimal);
    cfg = load_config(yaml, true);
    assert_true(cfg->dry_run);
    assert_true(cfg->playbooks[0]->dry_run);
    config_destroy(cfg);

    snprintf(yaml, sizeof(yaml), "dry_run: true\n%s", minimal);
    cfg = load_config(yaml, false);
    assert_true(cfg->dry_run);
    assert_true(cfg->playbooks[0]->dry_run);
    config_destroy(cfg);
}

static void test_env_expansion(void **state)
{
    (void)state;
    char long_value[3000];
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = 0;
    assert_int_equal(setenv("PLAYBOOKD_TEST_TOKEN", "s3cr3t", 1), 0);
    assert_int_equal(setenv("PLAYBOOKD_TEST_USER", "alice", 1), 0);
    assert_int_equal(setenv("PLAYBOOKD_TEST_LONG", long_value, 1), 0);
    assert_int_equal(setenv("PLAYBOOKD_TEST_EMPTY", "", 1), 0);
    assert_int_equal(setenv("PLAYBOOKD_TEST_HOOK", HOOK, 1), 0);
    struct config *cfg = load_config("nats:\n"
                                     "  token: pre-${PLAYBOOKD_TEST_TOKEN}-post\n"
                                     "  queue_group: \"${PLAYBOOKD_TEST_USER}@${PLAYBOOKD_TEST_TOKEN}$ $x {y}\"\n"
                                     "  servers: [\"nats://${PLAYBOOKD_TEST_LONG}:1\", \"a${PLAYBOOKD_TEST_EMPTY}b\"]\n"
                                     "kubernetes: {context: '${PLAYBOOKD_TEST_USER}'}\n"
                                     "playbooks:\n"
                                     "  notify: {type: slack, webhook_url: \"${PLAYBOOKD_TEST_HOOK}\"}\n"
                                     "topics:\n"
                                     "  \"falco.*.*\": [notify]\n",
                                     false);
    assert_string_equal(cfg->nats.token, "pre-s3cr3t-post");
    assert_string_equal(cfg->nats.queue_group, "alice@s3cr3t$ $x {y}");
    assert_string_equal(cfg->kube.context, "alice");
    assert_int_equal(cfg->nats.servers.n, 2);
    assert_int_equal(strlen(cfg->nats.servers.items[0]), strlen("nats://:1") + sizeof(long_value) - 1);
    assert_memory_equal(cfg->nats.servers.items[0], "nats://vvv", 10);
    assert_string_equal(cfg->nats.servers.items[1], "ab");
    config_destroy(cfg);
    unsetenv("PLAYBOOKD_TEST_TOKEN");
    unsetenv("PLAYBOOKD_TEST_USER");
    unsetenv("PLAYBOOKD_TEST_LONG");
    unsetenv("PLAYBOOKD_TEST_EMPTY");
    unsetenv("PLAYBOOKD_TEST_HOOK");
}

static void test_error_unknown_keys(void **state)
{
    (void)state;
    check_error("nats: {}\nfoo: 1\n",
                NAME ":2:1: key 'foo': unknown key (valid: nats, kubernetes, retry, http, "
                     "shutdown_timeout_ms, workers, queue_size, dry_run, "
                     "protected_namespaces, protected_nodes, rate_limit, expiry, playbooks, topics, rules)");
    check_error("nats:\n  servers: [nats://x:1]\n  bogus: 1\n",
                NAME ":3:3: key 'bogus': unknown key (valid: servers, queue_group, token, user, password, credentials, "
                     "nkey, tls, pending, jetstream)");
    check_error("nats:\n  tls: {ca: /a, crt: /b}\n", NAME ":2:17: key 'crt': unknown key (valid: ca, cert, key)");
    check_error("retry: {tries: 3}\n",
                NAME ":1:9: key 'tries': unknown key (valid: attempts, initial_backoff_ms, max_backoff_ms)");
    check_error("playbooks:\n"
                "  notify:\n"
                "    type: slack\n"
                "    webhook_url: " HOOK "\n"
                "    colour: red\n",
                NAME ":5:5: key 'colour': unknown parameter for playbook type slack (valid: webhook_url, channel, "
                     "username, min_priority, timeout_ms)");
}

static void test_error_playbook_type(void **state)
{
    (void)state;
    char expected[512];
    snprintf(expected, sizeof(expected), NAME ":3:11: key 'type': unknown playbook type (valid: %s)", type_list());
    check_error("playbooks:\n  notify:\n    type: pagerduty\n", expected);
    snprintf(expected, sizeof(expected), NAME ":2:13: key 'type': unknown playbook type (valid: %s)", type_list());
    check_error("playbooks:\n  n: {type: [slack]}\n", expected);
    check_error("playbooks:\n  notify:\n    webhook_url: " HOOK "\n", NAME ":3:5: key 'notify': missing 'type'");
    check_error("playbooks:\n  notify: slack\n",
                NAME ":2:11: key 'notify': a playbook is a map with a type and its parameters");
    check_error("playbooks:\n  \"bad name\": {type: slack}\n",
                NAME ":2:15: key 'bad name': a playbook name is 1 to 63 of [A-Za-z0-9_.-]");
    check_error("playbooks: [notify]\n", NAME ":1:12: key 'playbooks': expected a map of named playbooks");
    check_error("playbooks:\n  notify: {type: slack}\n",
                NAME ":2:11: key 'notify': missing required parameter 'webhook_url'");
    check_error("playbooks:\n  notify: {type: slack, webhook_url: \"\"}\n",
                NAME ":2:38: key 'webhook_url': must not be empty");
    check_error("playbooks:\n  notify: {type: slack, webhook_url: \"" HOOK "\", min_priority: Severe}\n",
                NAME ":2:103: key 'min_priority': unknown priority (valid: Emergency, Alert, Critical, Error, Warning, "
                     "Notice, Informational, Debug)");
}

static void test_error_yaml_structure(void **state)
{
    (void)state;
    check_error("dry_run: true\nprotected_namespaces: [a]\ndry_run: false\n", NAME ":3:1: duplicate key 'dry_run'");
    check_error("protected_namespaces: &ns [a]\nx: *ns\n", NAME ":2:4: aliases are not supported");
    check_error("- a\n- b\n", NAME ":1:1: the config must be a map");
    check_error("hello\n", NAME ":1:1: the config must be a map");
    check_error("", NAME ": the config is empty");
    check_error("# only a comment\n\n", NAME ": the config is empty");
    check_error("dry_run: true\n---\ndry_run: false\n", NAME ":2:1: only one YAML document is allowed");
    check_error("nats: [a\n", NAME ":2:1: did not find expected ',' or ']'");
    check_error("nats:\n  token: a\n token: b\n", NAME ":3:2: did not find expected key");
    check_error("? [a]\n: 1\n", NAME ":1:3: a key must be a plain string");
    check_error("nats: {tls: {ca: [[1]]}}\n", NAME ":1:18: key 'ca': expected a single value, not a list");
    check_error("nats: 3\n", NAME ":1:7: key 'nats': expected a map of settings");
}

static void test_error_nesting(void **state)
{
    (void)state;
    /* The root is depth 0; values nest up to 32 deep, and the 33rd level is refused. */
    char yaml[256];
    for (int depth = 31; depth <= 40; depth++) {
        int n = snprintf(yaml, sizeof(yaml), "x: ");
        for (int i = 0; i < depth; i++)
            yaml[n++] = '[';
        for (int i = 0; i < depth; i++)
            yaml[n++] = ']';
        yaml[n++] = '\n';
        yaml[n] = 0;
        struct config_node *root = (struct config_node *)(uintptr_t)1;
        struct error err = {{0}};
        int rc = config_tree_read(&root, NAME, yaml, strlen(yaml), true, &err);
        if (depth <= 32) {
            if (rc != 0)
                fail_msg("depth %d refused: %s", depth, err.msg);
            config_tree_free(root);
        } else {
            assert_int_equal(rc, -1);
            assert_null(root);
            assert_string_equal(err.msg, NAME ":1:36: nested too deeply");
        }
    }
    check_error("a: {b: {c: {d: {e: {f: {g: {h: {i: {j: {k: {l: {m: {n: {o: {p: {q: {r: {s: {t: {u: {v: {w: {x: {y: "
                "{z: {A: {B: {C: {D: {E: {F: {G: 1}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}\n",
                NAME ":1:132: nested too deeply");
}

static void test_error_env(void **state)
{
    (void)state;
    unsetenv("PLAYBOOKD_TEST_UNSET");
    check_error("nats:\n  token: ${PLAYBOOKD_TEST_UNSET}\n",
                NAME ":2:10: environment variable PLAYBOOKD_TEST_UNSET is not set");
    check_error("nats:\n  token: \"a ${PLAYBOOKD_TEST_UNSET} b\"\n",
                NAME ":2:10: environment variable PLAYBOOKD_TEST_UNSET is not set");
    check_error("nats:\n  token: \"${PLAYBOOKD_TEST\"\n", NAME ":2:10: malformed ${VAR} reference");
    check_error("nats:\n  token: \"${}\"\n", NAME ":2:10: malformed ${VAR} reference");
    check_error("nats:\n  token: \"${A-B}\"\n", NAME ":2:10: malformed ${VAR} reference");
    check_error("nats:\n  token: \"${A B}\"\n", NAME ":2:10: malformed ${VAR} reference");
    /* A variable name longer than the reader's buffer is malformed, not truncated. */
    char yaml[512];
    char name[200];
    memset(name, 'A', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    snprintf(yaml, sizeof(yaml), "nats:\n  token: \"${%s}\"\n", name);
    check_error(yaml, NAME ":2:10: malformed ${VAR} reference");
}

static void test_error_values(void **state)
{
    (void)state;
    check_error("dry_run: maybe\n", NAME ":1:10: key 'dry_run': expected true or false");
    check_error("dry_run: [true]\n", NAME ":1:10: key 'dry_run': expected a single value, not a list");
    check_error("retry:\n  attempts: 0\n", NAME ":2:13: key 'attempts': must be between 1 and 20");
    check_error("retry:\n  attempts: 21\n", NAME ":2:13: key 'attempts': must be between 1 and 20");
    check_error("retry:\n  attempts: three\n", NAME ":2:13: key 'attempts': expected an integer");
    check_error("retry:\n  attempts: 3x\n", NAME ":2:13: key 'attempts': expected an integer");
    check_error("retry:\n  attempts: \"\"\n", NAME ":2:13: key 'attempts': expected an integer");
    check_error("retry:\n  max_backoff_ms: 99999999999999999999999\n",
                NAME ":2:19: key 'max_backoff_ms': expected an integer");
    check_error("retry: {initial_backoff_ms: -5}\n",
                NAME ":1:29: key 'initial_backoff_ms': must be between 1 and 60000");
    check_error("protected_namespaces: [kube-system, Kube_System]\n",
                NAME ":1:23: key 'protected_namespaces': 'Kube_System' is not a valid namespace name");
    check_error("protected_namespaces: [-a]\n",
                NAME ":1:23: key 'protected_namespaces': '-a' is not a valid namespace name");
    check_error("protected_namespaces: [[a]]\n", NAME ":1:24: expected a string in the list 'protected_namespaces'");
    check_error("nats:\n  servers: []\n", NAME ":2:3: key 'nats': servers: at least one server is needed");
}

#define TOPICS "playbooks: {notify: {type: slack, webhook_url: \"" HOOK "\"}}\ntopics: {\"falco.>\": [notify]}\n"

/* Loads text[0..len) (which may hold NUL bytes) and expects exactly `expected`. */
static void check_error_len(const char *text, size_t len, const char *expected)
{
    struct config *cfg = NULL;
    struct error err = {{0}};
    if (config_load_string(&cfg, NAME, text, len, false, &err) != -1) {
        config_destroy(cfg);
        fail_msg("accepted a config with a NUL, expected: %s", expected);
    }
    if (strcmp(err.msg, expected) != 0)
        fail_msg("expected: %s\n     got: %s", expected, err.msg);
}

static void test_error_nul(void **state)
{
    (void)state;
    /* each config is valid but for its NUL (today's reader would take a shorter value, or ignore the rest) */
    /* a "\0" escape in a double-quoted value or key */
    check_error("nats:\n  token: \"abc\\0def\"\n" TOPICS, NAME ":2:10: a NUL character is not allowed in a value");
    check_error("protected_namespaces: [a, \"b\\x00\"]\n" TOPICS,
                NAME ":1:27: a NUL character is not allowed in a value");
    check_error("\"dry_run\\0x\": true\n" TOPICS, NAME ":1:1: a NUL character is not allowed in a value");
    /* a raw NUL byte: in a value, and on a line of its own before the rest of the file */
    static const char raw[] = "nats:\n  token: abc\0def\n" TOPICS;
    check_error_len(raw, sizeof(raw) - 1, NAME ":2:13: a NUL byte is not allowed in the config");
    static const char cut[] = TOPICS "\0\nprotected_namespaces: [Not_A_Namespace]\n";
    check_error_len(cut, sizeof(cut) - 1, NAME ":3:1: a NUL byte is not allowed in the config");
}

static void test_error_nats_auth(void **state)
{
    (void)state;
    check_error("nats:\n  token: t\n  user: u\n  password: p\n",
                NAME ":2:3: key 'nats': choose one of token, user/password, credentials or nkey");
    check_error("nats:\n  credentials: /c.creds\n  token: t\n",
                NAME ":2:3: key 'nats': choose one of token, user/password, credentials or nkey");
    check_error("nats:\n  user: u\n", NAME ":2:3: key 'nats': user and password go together");
    check_error("nats:\n  password: p\n", NAME ":2:3: key 'nats': user and password go together");
    check_error("nats:\n  tls:\n    cert: /c.pem\n", NAME ":3:5: key 'tls': tls cert and key go together");
    check_error("nats:\n  tls: {key: /k.pem}\n", NAME ":2:8: key 'tls': tls cert and key go together");
}

static void test_error_topics(void **state)
{
    (void)state;
    char expected[512];
    const char *pb = "playbooks:\n  notify: {type: slack, webhook_url: \"" HOOK "\"}\n";
    char yaml[512];

    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.>.x: [notify]\n", pb);
    check_error(yaml, NAME ":4:14: key 'falco.>.x': pattern \"falco.>.x\": '>' must be the last token");
    snprintf(yaml, sizeof(yaml), "%stopics:\n  \"falco. notice\": [notify]\n", pb);
    check_error(yaml, NAME
                ":4:20: key 'falco. notice': pattern \"falco. notice\" contains whitespace or a control character");
    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.*.*: [notify, nobody]\n", pb);
    snprintf(expected, sizeof(expected),
             NAME ":4:23: 'nobody' is neither a playbook defined under 'playbooks' nor a type (%s)", type_list());
    check_error(yaml, expected);
    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.*.*: []\n", pb);
    check_error(yaml, NAME ":4:14: key 'falco.*.*': expected a list of playbooks");
    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.*.*:\n", pb);
    check_error(yaml, NAME ":4:13: key 'falco.*.*': expected a list of playbooks");
    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.*.*: {notify: 1}\n", pb);
    check_error(yaml, NAME ":4:14: key 'falco.*.*': expected a list of playbooks");
    snprintf(yaml, sizeof(yaml), "%stopics:\n  falco.*.*: [[notify]]\n", pb);
    check_error(yaml, NAME ":4:15: expected a playbook name");
    check_error(pb, NAME ":1:1: no topics or rules: map at least one subject pattern to playbooks");
    snprintf(yaml, sizeof(yaml), "%stopics: {}\n", pb);
    check_error(yaml, NAME ":3:9: key 'topics': no topics or rules: map at least one subject pattern to playbooks");
    snprintf(yaml, sizeof(yaml), "%stopics: [notify]\n", pb);
    check_error(yaml, NAME ":3:9: key 'topics': expected a map of subject patterns to lists of playbooks");
}

static void test_error_webhook_url(void **state)
{
    (void)state;
    const char *yaml = "playbooks:\n"
                       "  notify:\n"
                       "    type: slack\n"
                       "    webhook_url: \"http://hooks.example.com/services/SECRET\"\n"
                       "topics:\n"
                       "  falco.>: [notify]\n";
    struct config *cfg = NULL;
    struct error err = {{0}};
    assert_int_equal(config_load_string(&cfg, NAME, yaml, strlen(yaml), false, &err), -1);
    assert_string_equal(err.msg, NAME ":4:18: key 'webhook_url': the URL must be https (plain http is allowed to "
                                      "loopback only)");
    /* The URL is a secret: no part of it may appear. */
    assert_null(strstr(err.msg, "hooks.example.com"));
    assert_null(strstr(err.msg, "SECRET"));
    assert_null(strstr(err.msg, "http://"));

    check_error("playbooks:\n  notify: {type: slack, webhook_url: \"not a url SECRET\"}\n",
                NAME ":2:38: key 'webhook_url': not a valid URL");
    check_error("playbooks:\n  notify: {type: slack, webhook_url: \"ftp://127.0.0.1/SECRET\"}\n",
                NAME ":2:38: key 'webhook_url': the URL must be https (plain http is allowed to loopback only)");

    /* Plain http to loopback is allowed (tests, local sidecars). */
    const char *loopback[] = {"http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/hook",
                              "http://127.1.2.3/x"};
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "playbooks:\n  n: {type: slack, webhook_url: \"%s\"}\ntopics: {a: [n]}\n",
                 loopback[i]);
        struct config *ok = load_config(text, false);
        config_destroy(ok);
    }
}

static void test_config_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/playbookd-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, minimal, strlen(minimal)), (ssize_t)strlen(minimal));
    close(fd);
    struct config *cfg = NULL;
    struct error err = {{0}};
    if (config_load(&cfg, path, false, &err) != 0)
        fail_msg("config_load: %s", err.msg);
    assert_string_equal(cfg->file, path);
    assert_int_equal(cfg->n_topics, 1);
    config_destroy(cfg);

    /* Errors name the file. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "dry_run: 2\n", 11), 11);
    close(fd);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s:1:10: key 'dry_run': expected true or false", path);
    assert_int_equal(config_load(&cfg, path, false, &err), -1);
    assert_null(cfg);
    assert_string_equal(err.msg, expected);
    unlink(path);

    assert_int_equal(config_load(&cfg, path, false, &err), -1);
    snprintf(expected, sizeof(expected), "%s: cannot open: No such file or directory", path);
    assert_string_equal(err.msg, expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_setting),
        cmocka_unit_test(test_named_playbook_shared),
        cmocka_unit_test(test_type_used_directly_shared),
        cmocka_unit_test(test_type_slack_needs_parameters),
        cmocka_unit_test(test_dry_run_argument),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_error_unknown_keys),
        cmocka_unit_test(test_error_playbook_type),
        cmocka_unit_test(test_error_yaml_structure),
        cmocka_unit_test(test_error_nesting),
        cmocka_unit_test(test_error_env),
        cmocka_unit_test(test_error_values),
        cmocka_unit_test(test_error_nul),
        cmocka_unit_test(test_error_nats_auth),
        cmocka_unit_test(test_error_topics),
        cmocka_unit_test(test_error_webhook_url),
        cmocka_unit_test(test_config_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
