/*
 * test_labels.c: the `labels:` parameter of label-pod and label-node, checked at load with file:line:column
 * (keys, values, null, bounds), YAML's null as the config reader sees it, and the merge patch that applies it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/config.h"
#include "playbookd/labels.h"

#include "config_check.h"

#define TOPICS "topics:\n  falco.>: [l]\n"

/* A config with one playbook l of the type, with params (a flow map's inside) on line 2. */
static char *one_playbook(const char *type, const char *params)
{
    static char text[8192];
    snprintf(text, sizeof(text), "playbooks:\n  l: {type: %s, %s}\n" TOPICS, type, params);
    return text;
}

/* Expects the config of one_playbook(type, params) to fail at line 2, at the column of `at` in params (its
 * first occurrence), with "key 'KEY': WHY". */
static void check_param_error(const char *type, const char *params, const char *at, const char *key, const char *why)
{
    char expected[1024];
    int column = (int)(strlen("  l: {type: , ") + strlen(type) + (size_t)(strstr(params, at) - params)) + 1;
    snprintf(expected, sizeof(expected), NAME ":2:%d: key '%s': %s", column, key, why);
    check_error(one_playbook(type, params), expected);
}

static void test_valid_labels_load(void **state)
{
    (void)state;
    const char *yaml = "playbooks:\n"
                       "  l:\n"
                       "    type: label-pod\n"
                       "    labels:\n"
                       "      falco.org/alert: \"true\"\n"
                       "      a.b-c.example.com/Name_1.x: v-1.2_3\n"
                       "      empty: \"\"\n"
                       "      gone: null\n"
                       "      gone2: ~\n"
                       "      gone3:\n"
                       "      quoted: \"null\"\n" TOPICS;
    struct config *cfg = NULL;
    struct error err = {{0}};
    assert_int_equal(config_load_string(&cfg, NAME, yaml, strlen(yaml), false, &err), 0);
    config_destroy(cfg);
    char long_ok[160];
    snprintf(long_ok, sizeof(long_ok), "labels: {%063d: %063d}", 0, 0); /* 63 is the most for both */
    assert_int_equal(config_load_string(&cfg, NAME, one_playbook("label-node", long_ok),
                                        strlen(one_playbook("label-node", long_ok)), false, &err),
                     0);
    config_destroy(cfg);
}

static void test_invalid_keys(void **state)
{
    (void)state;
    const char *why = "not a valid label key: an optional DNS subdomain prefix and '/', then a name of 1-63 "
                      "characters [A-Za-z0-9-_.] beginning and ending with a letter or digit";
    static const char *const keys[] = {"-a",  "a-",  "a/b/c",        "/a",  "a/", "Example.com/a",
                                       "a b", "a:b", "\"a\\u00e9\"", "\"\""};
    char params[128];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(params, sizeof(params), "labels: {%s: x}", keys[i]);
        const char *shown = keys[i][0] == '"' ? (i + 1 == sizeof(keys) / sizeof(keys[0]) ? "" : "a\xc3\xa9") : keys[i];
        check_param_error("label-pod", params, keys[i], shown, why);
    }
    char long_name[128], key[65];
    snprintf(long_name, sizeof(long_name), "labels: {%064d: x}", 0); /* a name of 64 */
    snprintf(key, sizeof(key), "%064d", 0);
    check_param_error("label-node", long_name, key, key, why);
    char long_prefix[400]; /* a prefix of 254: longer than a DNS subdomain */
    snprintf(long_prefix, sizeof(long_prefix), "labels: {%s.%s.%s.%s/a: x}",
             "a123456789012345678901234567890123456789012345678901234567890ab",
             "a123456789012345678901234567890123456789012345678901234567890ab",
             "a123456789012345678901234567890123456789012345678901234567890ab",
             "a123456789012345678901234567890123456789012345678901234567890abc");
    char *text = one_playbook("label-node", long_prefix);
    struct config *cfg = NULL;
    struct error err = {{0}};
    assert_int_equal(config_load_string(&cfg, NAME, text, strlen(text), false, &err), -1);
    assert_non_null(strstr(err.msg, why));
}

static void test_invalid_values(void **state)
{
    (void)state;
    const char *why = "not a valid label value: at most 63 characters [A-Za-z0-9-_.] beginning and ending with a "
                      "letter or digit, or empty (null removes the label)";
    static const char *const values[] = {"-x", "x-", "_x", "x.", "a b", "a/b", "\"a\\u00e9\"", "\"ok\\n\""};
    char params[128];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(params, sizeof(params), "labels: {ok: %s}", values[i]);
        check_param_error("label-pod", params, values[i], "ok", why);
    }
    snprintf(params, sizeof(params), "labels: {ok: %064d}", 0);
    check_param_error("label-node", params, "0", "ok", why);
}

static void test_shape_and_bounds(void **state)
{
    (void)state;
    const char *map = "expected a map of label keys to values, such as {falco.org/alert: \"true\"}";
    const char *value = "expected a label value, or null to remove the label";
    check_param_error("label-pod", "labels: {}", "{", "labels", "at least one label is needed");
    check_param_error("label-pod", "labels: [a]", "[", "labels", map);
    check_param_error("label-pod", "labels: x", "x", "labels", map);
    check_param_error("label-node", "labels: {a: [b]}", "[", "a", value);
    check_param_error("label-node", "labels: {a: {b: c}}", "{b", "a", value);
    check_param_error("label-pod", "labels: {a: b}, label: x", "label:", "label",
                      "unknown parameter for playbook type label-pod (valid: labels)");
    check_error("playbooks:\n  l: {type: label-pod}\n" TOPICS,
                NAME ":2:6: key 'l': missing required parameter 'labels'");
    check_error("topics:\n  falco.>: [label-node]\n", NAME ":2:13: type label-node used with its defaults: missing "
                                                           "required parameter 'labels'; define it under 'playbooks'");
    char params[LABELS_MAX * 12 + 32];
    size_t n = (size_t)snprintf(params, sizeof(params), "labels: {");
    for (int i = 0; i <= LABELS_MAX; i++)
        n += (size_t)snprintf(params + n, sizeof(params) - n, "k%d: v, ", i);
    snprintf(params + n - 2, sizeof(params) - n + 2, "}");
    check_param_error("label-pod", params, "{", "labels", "at most 64 labels");
    check_param_error("cordon-node", "labels: {a: b}", "labels", "labels",
                      "unknown parameter for playbook type cordon-node (valid: none)");
}

/* Reads "labels: {...}" and loads its set. */
static int load_set(const char *yaml, struct config_node **tree, struct label_set *set, struct error *err)
{
    assert_int_equal(config_tree_read(tree, NAME, yaml, strlen(yaml), false, err), 0);
    return label_set_load(set, *tree, config_node_get(*tree, "labels"), err);
}

static void test_yaml_null_and_the_patch(void **state)
{
    (void)state;
    struct config_node *tree = NULL;
    struct label_set set;
    struct error err = {{0}};
    const char *yaml = "labels: {a: null, b: ~, c: , d: \"null\", e: '', f: x, g: !!str null, h: NULL, i: Null, "
                       "j: nULL}\n";
    assert_int_equal(load_set(yaml, &tree, &set, &err), 0);
    char *json = label_patch(set.items, set.n, "u-1", "42", NULL);
    assert_string_equal(json,
                        "{\"metadata\":{\"uid\":\"u-1\",\"resourceVersion\":\"42\",\"labels\":{\"a\":null,\"b\":null,"
                        "\"c\":null,\"d\":\"null\",\"e\":\"\",\"f\":\"x\",\"g\":\"null\",\"h\":null,\"i\":null,"
                        "\"j\":\"nULL\"}}}");
    free(json);
    json = label_patch(set.items, 1, NULL, NULL, NULL);
    assert_string_equal(json, "{\"metadata\":{\"labels\":{\"a\":null}}}");
    free(json);

    cJSON *labels =
        cJSON_Parse("{\"d\":\"null\",\"e\":\"\",\"f\":\"x\",\"g\":\"null\",\"j\":\"nULL\",\"other\":\"1\"}");
    assert_true(label_set_applied(&set, labels));
    cJSON_ReplaceItemInObjectCaseSensitive(labels, "f", cJSON_CreateString("y"));
    assert_false(label_set_applied(&set, labels));
    cJSON_ReplaceItemInObjectCaseSensitive(labels, "f", cJSON_CreateString("x"));
    cJSON_AddStringToObject(labels, "a", "present");
    assert_false(label_set_applied(&set, labels)); /* a key to remove is there */
    assert_false(label_set_applied(&set, NULL));   /* no labels at all: the values are missing */
    cJSON_Delete(labels);
    label_set_free(&set);
    config_tree_free(tree);
}

static void test_a_failed_load_frees_cleanly(void **state)
{
    (void)state;
    struct config_node *tree = NULL;
    struct label_set set;
    struct error err = {{0}};
    assert_int_equal(load_set("labels: {a: b, c: d, -e: f}\n", &tree, &set, &err), -1);
    assert_string_equal(err.msg, NAME ":1:22: key '-e': not a valid label key: an optional DNS subdomain prefix and "
                                      "'/', then a name of 1-63 characters [A-Za-z0-9-_.] beginning and ending with a "
                                      "letter or digit");
    label_set_free(&set); /* what was loaded before the error */
    label_set_free(&set); /* and again: emptied */
    config_tree_free(tree);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_labels_load),       cmocka_unit_test(test_invalid_keys),
        cmocka_unit_test(test_invalid_values),          cmocka_unit_test(test_shape_and_bounds),
        cmocka_unit_test(test_yaml_null_and_the_patch), cmocka_unit_test(test_a_failed_load_frees_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
