/* test_rules.c: unit tests for the match language: globs, priority comparisons, each criterion with its
 * explanation (booleans and fractions too, which the public sample lacks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "playbookd/rules.h"
#include "playbookd/text.h"

static void test_glob(void **state)
{
    (void)state;
    assert_true(rule_glob_match("prod-*", "prod-eu"));
    assert_true(rule_glob_match("prod-*", "prod-"));
    assert_false(rule_glob_match("prod-*", "preprod-eu"));
    assert_true(rule_glob_match("*", ""));
    assert_false(rule_glob_match("?", ""));
    assert_true(rule_glob_match("?", "é")); /* one character, two bytes */
    assert_true(rule_glob_match("a*b*c", "aXbYbZc"));
    assert_false(rule_glob_match("a*b*c", "aXbYbZ"));
    assert_true(rule_glob_match("*.*.*", "a.b.c"));
    assert_true(rule_glob_match("\\*lit", "*lit"));
    assert_false(rule_glob_match("\\*lit", "xlit"));
    assert_true(rule_glob_match("a\\?", "a?"));
    assert_false(rule_glob_match("a\\?", "ab"));
    assert_true(rule_glob_match("", ""));
    assert_false(rule_glob_match("", "x"));
    assert_true(rule_glob_match("**x", "x"));
    struct error err;
    assert_int_equal(rule_glob_check("a\\*b\\?c\\\\", &err), 0);
    assert_int_equal(rule_glob_check("bad\\", &err), -1);
    assert_string_equal(err.msg, "bad glob: '\\' escapes only '*', '?' or '\\' (at byte 4)");
    assert_int_equal(rule_glob_check("a\\b", &err), -1);
}

static void test_priority_parse(void **state)
{
    (void)state;
    enum rule_op op;
    enum priority p;
    struct error err;
    static const struct {
        const char *text;
        enum rule_op op;
        enum priority p;
    } ok[] = {
        {">=Warning", RULE_OP_GE, PRIORITY_WARNING},   {"> error", RULE_OP_GT, PRIORITY_ERROR},
        {"<=debug", RULE_OP_LE, PRIORITY_DEBUG},       {"<Info", RULE_OP_LT, PRIORITY_INFORMATIONAL},
        {"!=Notice", RULE_OP_NE, PRIORITY_NOTICE},     {"=Critical", RULE_OP_EQ, PRIORITY_CRITICAL},
        {"Emergency", RULE_OP_EQ, PRIORITY_EMERGENCY},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(rule_priority_parse(ok[i].text, &op, &p, &err), 0);
        assert_int_equal(op, ok[i].op);
        assert_int_equal(p, ok[i].p);
    }
    static const char *const bad[] = {">=Warnin", "=>Warning", "", ">=", "~Warning", "Warning!"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rule_priority_parse(bad[i], &op, &p, &err), -1);
    assert_non_null(strstr(err.msg, "bad priority comparison \"Warning!\""));
}

static const char alert_json[] =
    "{\"rule\":\"Terminal shell in container\",\"priority\":\"Warning\",\"source\":\"syscall\","
    "\"tags\":[\"container\",\"shell\",\"mitre_execution\"],\"output_fields\":{\"k8s.ns.name\":\"prod-eu\","
    "\"proc.tty\":34816,\"user.loginuid\":-1,\"ratio\":0.5,\"evt.is_open_write\":true,\"fd.rport\":null,"
    "\"obj\":{\"a\":1}}}";

struct fixture {
    struct alert a;
    struct rule r;
    char why[RULE_WHY_MAX];
};

static int setup(void **state)
{
    static struct fixture f;
    struct error err;
    memset(&f, 0, sizeof(f));
    if (alert_parse(&f.a, alert_json, strlen(alert_json), &err) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    alert_free(&f->a);
    return 0;
}

#define SUBJECT "falco.warning.terminal_shell_in_container"

static char *items[4][4];

/* A string list over static storage (rule_free is not used here). */
static struct string_list list(int slot, const char *a, const char *b)
{
    items[slot][0] = (char *)(uintptr_t)a;
    items[slot][1] = (char *)(uintptr_t)b;
    return (struct string_list){.items = items[slot], .n = b ? 2 : 1};
}

/* Matches; else why names the first failed criterion, exactly. */
static void expect(struct fixture *f, const char *why)
{
    bool matched = rule_match(&f->r, &f->a, SUBJECT, f->why, sizeof(f->why));
    assert_true(matched == (why == NULL));
    assert_true(rule_match(&f->r, &f->a, SUBJECT, NULL, 0) == matched); /* the hot path agrees */
    if (why != NULL && strcmp(f->why, why) != 0)
        fail_msg("expected: %s\ngot:      %s", why, f->why);
}

static void test_empty_rule_matches_all(void **state)
{
    struct fixture *f = *state;
    memset(&f->r, 0, sizeof(f->r));
    expect(f, NULL);
}

static void test_priority_every_boundary(void **state)
{
    struct fixture *f = *state; /* the alert is Warning */
    static const struct {
        const char *text;
        bool match;
    } cases[] = {
        {">=Warning", true},  {">Warning", false},   {"<=Warning", true},   {"<Warning", false}, {"=Warning", true},
        {"!=Warning", false}, {">=Error", false},    {">Notice", true},     {"<Error", true},    {"<=Notice", false},
        {">=Debug", true},    {"<=Emergency", true}, {">Emergency", false}, {"<Debug", false},
    };
    struct error err;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&f->r, 0, sizeof(f->r));
        f->r.priority_text = (char *)(uintptr_t)cases[i].text;
        assert_int_equal(rule_priority_parse(cases[i].text, &f->r.op, &f->r.priority, &err), 0);
        if (rule_match(&f->r, &f->a, SUBJECT, f->why, sizeof(f->why)) != cases[i].match)
            fail_msg("%s: expected %s", cases[i].text, cases[i].match ? "a match" : "no match");
    }
    expect(f, "priority Warning is not <Debug");
}

static void test_subjects_rules_source(void **state)
{
    struct fixture *f = *state;
    memset(&f->r, 0, sizeof(f->r));
    f->r.subjects = list(0, "falco.*.terminal_shell_in_container", NULL);
    expect(f, NULL);
    f->r.subjects = list(0, "falco.error.>", "falco.notice.*");
    expect(f, "subject \"" SUBJECT "\" matches none of \"falco.error.>\", \"falco.notice.*\"");
    memset(&f->r, 0, sizeof(f->r));
    f->r.rules = list(0, "Write below etc", "Terminal shell in container");
    expect(f, NULL);
    f->r.rules = list(0, "terminal shell in container", NULL);
    expect(f, "rule \"Terminal shell in container\" is none of \"terminal shell in container\"");
    memset(&f->r, 0, sizeof(f->r));
    f->r.source = (char *)(uintptr_t) "syscall";
    expect(f, NULL);
    f->r.source = (char *)(uintptr_t) "k8s_audit";
    expect(f, "source is \"syscall\", not \"k8s_audit\"");
    /* An explanation cut short is cut on a character boundary (found by fuzz_rules). */
    char small[28];
    f->r.source = (char *)(uintptr_t) "\xc3\xa9";
    assert_false(rule_match(&f->r, &f->a, SUBJECT, small, sizeof(small)));
    assert_string_equal(small, "source is \"syscall\", not \"");
}

static void test_tags_any_of_all_of(void **state)
{
    struct fixture *f = *state;
    struct string_list lists[2];
    memset(&f->r, 0, sizeof(f->r));
    f->r.tags = lists;
    f->r.n_tags = 1;
    lists[0] = list(0, "container", "mitre_execution");
    expect(f, NULL);
    lists[0] = list(0, "container", "k8s");
    expect(f, "tags: no list is all in the alert's tags [\"container\", \"shell\", \"mitre_execution\"] "
              "([\"container\", \"k8s\"])");
    lists[1] = list(1, "shell", NULL);
    f->r.n_tags = 2;
    expect(f, NULL);
}

static void test_output_fields_every_kind(void **state)
{
    struct fixture *f = *state;
    struct rule_field fields[1];
    static const struct {
        const char *key, *glob;
        bool negate;
        const char *why; /* NULL: matches */
    } cases[] = {
        {"k8s.ns.name", "prod-*", false, NULL},
        {"k8s.ns.name", "default", false, "output_fields k8s.ns.name is \"prod-eu\", not \"default\""},
        {"k8s.ns.name", "prod-??", true,
         "output_fields k8s.ns.name is \"prod-eu\", excluded by k8s.ns.name!=: \"prod-??\""},
        {"k8s.ns.name", "default", true, NULL},
        {"proc.tty", "34816", false, NULL},
        {"proc.tty", "348*", false, NULL},
        {"user.loginuid", "-1", false, NULL},
        {"ratio", "0.5", false, NULL},
        {"evt.is_open_write", "true", false, NULL},
        {"evt.is_open_write", "false", false, "output_fields evt.is_open_write is \"true\", not \"false\""},
        {"evt.is_open_write", "false", true, NULL},
        {"fd.rport", "*", false, "output_fields fd.rport is null, not \"*\""},
        {"fd.rport", "*", true, NULL},
        {"no.such.field", "*", false, "output_fields no.such.field is missing, not \"*\""},
        {"no.such.field", "x", true, NULL},
        {"obj", "*", false, "output_fields obj is an object, not \"*\""},
    };
    memset(&f->r, 0, sizeof(f->r));
    f->r.fields = fields;
    f->r.n_fields = 1;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fields[0] =
            (struct rule_field){(char *)(uintptr_t)cases[i].key, (char *)(uintptr_t)cases[i].glob, cases[i].negate};
        expect(f, cases[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_priority_parse),
        cmocka_unit_test_setup_teardown(test_empty_rule_matches_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_every_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subjects_rules_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags_any_of_all_of, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_fields_every_kind, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
