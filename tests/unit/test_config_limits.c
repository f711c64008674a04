/*
 * test_config_limits.c: unit tests for the blast-radius settings: rate_limit at the top level and on a
 * playbook, protected_nodes, their defaults, and every error's text with file:line:column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "playbookd/config.h"
#include "playbookd/playbook.h"

#include "config_check.h"

#define TOPICS "topics: {falco.>: [kill]}\n"
#define KILL "playbooks:\n  kill: {type: delete-pod}\n" TOPICS

static void test_defaults(void **state)
{
    (void)state;
    struct config *cfg = load_ok(KILL);
    assert_int_equal(cfg->rate_limit.count, 0); /* absent: no limit */
    assert_int_equal(cfg->playbooks[0]->rate_limit.count, 0);
    assert_int_equal(cfg->protected_node_labels.n, 1);
    assert_string_equal(cfg->protected_node_labels.items[0], "node-role.kubernetes.io/control-plane");
    assert_ptr_equal(cfg->env->protected_node_labels, &cfg->protected_node_labels);
    config_destroy(cfg);
}

static void test_settings(void **state)
{
    (void)state;
    struct config *cfg =
        load_ok("rate_limit: {count: 20, window: 1m}\n"
                "protected_nodes: {labels: [node-role.kubernetes.io/master, example.com/keep, gpu]}\n"
                "playbooks:\n"
                "  kill: {type: delete-pod, rate_limit: {count: 10, window: 30s}, cooldown: 1m}\n" TOPICS);
    assert_int_equal(cfg->rate_limit.count, 20);
    assert_int_equal(cfg->rate_limit.window_ms, 60000);
    assert_int_equal(cfg->playbooks[0]->rate_limit.count, 10);
    assert_int_equal(cfg->playbooks[0]->rate_limit.window_ms, 30000);
    assert_int_equal(cfg->playbooks[0]->cooldown_ms, 60000);
    assert_int_equal(cfg->protected_node_labels.n, 3);
    assert_string_equal(cfg->protected_node_labels.items[1], "example.com/keep");
    config_destroy(cfg);

    cfg = load_ok("protected_nodes: {labels: []}\n" KILL); /* an empty list: no node is protected */
    assert_int_equal(cfg->protected_node_labels.n, 0);
    config_destroy(cfg);
    cfg = load_ok("rate_limit: {count: 100000, window: 168h}\n" KILL);
    config_destroy(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    check_error("rate_limit: {count: 0, window: 1m}\n" KILL, NAME ":1:21: key 'count': must be between 1 and 100000");
    check_error("rate_limit: {count: 100001, window: 1m}\n" KILL,
                NAME ":1:21: key 'count': must be between 1 and 100000");
    check_error("rate_limit: {count: 5, window: 1x}\n" KILL,
                NAME ":1:32: key 'window': expected a duration such as 500ms, 30s, 1m, 24h or 1h30m");
    check_error("rate_limit: {count: 5, window: 500ms}\n" KILL,
                NAME ":1:32: key 'window': must be between 1s and 168h");
    check_error("rate_limit: {count: 5}\n" KILL, NAME
                ":1:13: key 'rate_limit': rate_limit needs both count and window, such as {count: 20, window: 1m}");
    check_error("rate_limit:\n  window: 1m\n" KILL,
                NAME ":2:3: key 'rate_limit': rate_limit needs both count and window, such as {count: 20, window: 1m}");
    check_error("rate_limit: 20\n" KILL, NAME ":1:13: key 'rate_limit': expected a map of settings");
    check_error("rate_limit: {count: 5, window: 1m, burst: 2}\n" KILL,
                NAME ":1:36: key 'burst': unknown key (valid: count, window)");
    check_error("protected_nodes: {labels: [node-role.kubernetes.io/control-plane, -bad]}\n" KILL,
                NAME ":1:67: protected_nodes: '-bad' is not a label key ([DNS-1123 subdomain/]name, name 1 to 63 of "
                     "[A-Za-z0-9-_.])");
    check_error("protected_nodes:\n  labels: \"Bad Label\"\n" KILL,
                NAME ":2:11: key 'labels': protected_nodes: 'Bad Label' is not a label key ([DNS-1123 subdomain/]name, "
                     "name 1 to 63 of [A-Za-z0-9-_.])");
    check_error("protected_nodes: {labels: [a/b/c]}\n" KILL,
                NAME ":1:28: protected_nodes: 'a/b/c' is not a label key ([DNS-1123 subdomain/]name, name 1 to 63 of "
                     "[A-Za-z0-9-_.])");
    check_error("protected_nodes: {taints: [x]}\n" KILL, NAME ":1:19: key 'taints': unknown key (valid: labels)");
    check_error("playbooks:\n  kill: {type: delete-pod, rate_limit: {count: 0, window: 1m}}\n" TOPICS,
                NAME ":2:48: key 'count': must be between 1 and 100000");
    check_error("playbooks:\n  kill:\n    type: delete-pod\n    rate_limit: {window: 1m}\n" TOPICS, NAME
                ":4:17: key 'rate_limit': rate_limit needs both count and window, such as {count: 20, window: 1m}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
