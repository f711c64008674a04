/*
 * test_config_rules.c: unit tests for the `rules:` list of the config: what it compiles to (topics first,
 * defaults, negations, the subscriptions' union) and every error's text with file:line:column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "playbookd/config.h"
#include "playbookd/rules.h"

#include "config_check.h"

#define HEAD "playbooks:\n  kill: {type: delete-pod}\n"
#define RULES HEAD "rules:\n"

static void test_compiled(void **state)
{
    (void)state;
    struct config *cfg = load_ok(HEAD "topics:\n  falco.*.x: [kill]\nrules:\n"
                                      "  - name: shells in prod\n"
                                      "    match:\n"
                                      "      subjects: [\"falco.*.terminal_shell_in_container\"]\n"
                                      "      priority: \">=Warning\"\n"
                                      "      rules: [Terminal shell in container]\n"
                                      "      tags: [[container, mitre_execution], [k8s]]\n"
                                      "      source: syscall\n"
                                      "      output_fields:\n"
                                      "        k8s.ns.name: \"prod-*\"\n"
                                      "        container.image.repository!=: registry.local/debug\n"
                                      "        proc.tty: 0\n"
                                      "    playbooks: [kill, delete-pod]\n"
                                      "  - {name: stop, playbooks: kill, continue: false}\n");
    assert_int_equal(cfg->n_topics, 1);
    assert_int_equal(cfg->n_rules, 3);
    const struct rule *t = &cfg->rules[0], *r = &cfg->rules[1], *s = &cfg->rules[2];
    assert_true(t->is_topic);
    assert_string_equal(t->name, "falco.*.x");
    assert_int_equal(t->subjects.n, 1);
    assert_false(t->stop);
    assert_false(r->is_topic);
    assert_string_equal(r->name, "shells in prod");
    assert_int_equal(r->op, RULE_OP_GE);
    assert_int_equal(r->priority, PRIORITY_WARNING);
    assert_int_equal(r->rules.n, 1);
    assert_int_equal(r->n_tags, 2);
    assert_int_equal(r->tags[0].n, 2);
    assert_string_equal(r->tags[1].items[0], "k8s");
    assert_string_equal(r->source, "syscall");
    assert_int_equal(r->n_fields, 3);
    assert_string_equal(r->fields[1].key, "container.image.repository");
    assert_true(r->fields[1].negate);
    assert_false(r->fields[0].negate);
    assert_string_equal(r->fields[2].glob, "0");
    assert_int_equal(r->n_playbooks, 2);
    assert_false(r->stop);
    assert_true(s->stop);
    assert_int_equal(s->op, RULE_OP_NONE);
    assert_int_equal(s->n_playbooks, 1);
    /* falco.> (the rule without subjects) covers both other patterns */
    assert_int_equal(cfg->subscriptions.n, 1);
    assert_string_equal(cfg->subscriptions.items[0], "falco.>");
    config_destroy(cfg);
}

static void test_subscriptions_union(void **state)
{
    (void)state;
    struct config *cfg = load_ok(HEAD "topics:\n  falco.*.a: [kill]\n  falco.notice.a: [kill]\n  falco.*.b: [kill]\n"
                                      "rules:\n  - {name: r, match: {subjects: [falco.*.a, x.>, x.y, falco.*.*]}, "
                                      "playbooks: [kill]}\n");
    /* falco.notice.a and falco.*.a are covered by falco.*.a and falco.*.*; x.y by x.>; duplicates once */
    assert_int_equal(cfg->subscriptions.n, 2);
    assert_string_equal(cfg->subscriptions.items[0], "x.>");
    assert_string_equal(cfg->subscriptions.items[1], "falco.*.*");
    config_destroy(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    check_error(RULES "  - {name: a, playbooks: [kill], bogus: 1}\n",
                NAME ":4:34: key 'bogus': unknown key (valid: name, match, playbooks, continue)");
    check_error(RULES "  - {name: a, match: {bogus: 1}, playbooks: [kill]}\n",
                NAME ":4:23: key 'bogus': unknown key (valid: subjects, priority, rules, tags, source, output_fields)");
    check_error(RULES "  - {name: a, match: {priority: \">=Warnin\"}, playbooks: [kill]}\n",
                NAME ":4:33: key 'priority': bad priority comparison \">=Warnin\": expected an optional =, !=, <, <=, "
                     ">, >= and one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug "
                     "(such as \">=Warning\")");
    check_error(RULES "  - {name: a, match: {output_fields: {k8s.ns.name: \"bad\\\\\"}}, playbooks: [kill]}\n",
                NAME ":4:52: key 'k8s.ns.name': bad glob: '\\' escapes only '*', '?' or '\\' (at byte 4)");
    check_error(RULES "  - {name: a, playbooks: [kill]}\n  - {name: a, playbooks: [kill]}\n",
                NAME ":5:12: key 'name': duplicate rule name \"a\"");
    check_error(HEAD "topics: {falco.>: [kill]}\nrules:\n  - {name: falco.>, playbooks: [kill]}\n",
                NAME ":5:12: key 'name': duplicate rule name \"falco.>\" (a topic has this pattern)");
    check_error(RULES "  - {name: \"\", playbooks: [kill]}\n", NAME ":4:12: key 'name': must not be empty");
    check_error(RULES "  - {match: {}, playbooks: [kill]}\n", NAME ":4:5: missing required parameter 'name'");
    check_error(RULES "  - {name: \"a\\tb\", playbooks: [kill]}\n",
                NAME ":4:12: key 'name': a rule name has no control characters");
    char expected[512];
    snprintf(expected, sizeof(expected),
             NAME ":4:27: 'nope' is neither a playbook defined under 'playbooks' nor a type (%s)", type_list());
    check_error(RULES "  - {name: a, playbooks: [nope]}\n", expected);
    check_error(RULES "  - {name: a}\n", NAME ":4:5: missing 'playbooks': the playbooks this rule runs");
    check_error(RULES "  - {name: a, playbooks: []}\n", NAME ":4:26: key 'playbooks': expected a list of playbooks");
    check_error(RULES "  - {name: a, match: {subjects: [\"falco.>.x\"]}, playbooks: [kill]}\n",
                NAME ":4:34: bad subject pattern: pattern \"falco.>.x\": '>' must be the last token");
    check_error(RULES "  - {name: a, match: {subjects: []}, playbooks: [kill]}\n",
                NAME ":4:33: key 'subjects': an empty list matches nothing: remove the key to match any");
    check_error(RULES "  - {name: a, match: {rules: []}, playbooks: [kill]}\n",
                NAME ":4:30: key 'rules': an empty list matches nothing: remove the key to match any");
    check_error(RULES "  - {name: a, continue: maybe, playbooks: [kill]}\n",
                NAME ":4:25: key 'continue': expected true or false");
    check_error(RULES "  - x\n", NAME ":4:5: a rule is a map: name, match, playbooks, continue");
    check_error(HEAD "rules: {a: 1}\n",
                NAME ":3:8: key 'rules': rules is a list of rules, each with name, match and playbooks");
}

#define TAGS_SHAPE "tags is a list of lists: [[a, b]] needs both tags, [[a], [b]] either one"

static void test_errors_tags_and_fields(void **state)
{
    (void)state;
    check_error(RULES "  - {name: a, match: {tags: [container, shell]}, playbooks: [kill]}\n",
                NAME ":4:30: " TAGS_SHAPE "; a flat list is not accepted (write [[container]])");
    check_error(RULES "  - {name: a, match: {tags: [[]]}, playbooks: [kill]}\n",
                NAME ":4:30: " TAGS_SHAPE "; an inner list holds at least one tag");
    check_error(RULES "  - {name: a, match: {tags: container}, playbooks: [kill]}\n",
                NAME ":4:29: key 'tags': " TAGS_SHAPE);
    check_error(RULES "  - {name: a, match: {tags: [[{x: 1}]]}, playbooks: [kill]}\n",
                NAME ":4:31: " TAGS_SHAPE "; each tag is a non-empty string");
    check_error(RULES "  - {name: a, match: {output_fields: {\"!=\": x}}, playbooks: [kill]}\n",
                NAME ":4:39: key '!=': an output field name is 1 to 1024 bytes (\"key\", or \"key!=\" to exclude)");
    check_error(RULES "  - {name: a, match: {output_fields: {a: [x]}}, playbooks: [kill]}\n",
                NAME ":4:42: key 'a': expected one value or glob (a string, number or boolean)");
    check_error(RULES "  - {name: a, match: {output_fields: [a]}, playbooks: [kill]}\n",
                NAME ":4:38: key 'output_fields': output_fields is a map of field names to values or globs");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compiled),
        cmocka_unit_test(test_subscriptions_union),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_tags_and_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
