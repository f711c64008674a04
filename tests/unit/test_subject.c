/* test_subject.c: unit tests for subject slugs, alert subjects, NATS pattern checks and matching, priority names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/alert.h"
#include "playbookd/subject.h"

#define DEFAULT_SAMPLES "../shared/falco-alerts/public-sample.jsonl"

/* Every rule of shared/falco-alerts/public-sample.jsonl (SOURCES.md lists 14) and its slug. */
static const struct {
    const char *rule;
    const char *slug;
} sample_rules[] = {
    {"Attach/Exec Pod", "attach_exec_pod"},
    {"Clear Log Activities", "clear_log_activities"},
    {"Delete or rename shell history", "delete_or_rename_shell_history"},
    {"Drop and execute new binary in container", "drop_and_execute_new_binary_in_container"},
    {"Falco internal: syscall event drop", "falco_internal_syscall_event_drop"},
    {"Fileless execution via memfd_create", "fileless_execution_via_memfd_create"},
    {"Find AWS Credentials", "find_aws_credentials"},
    {"GCP WAF rule modified or deleted", "gcp_waf_rule_modified_or_deleted"},
    {"Launch Privileged Container", "launch_privileged_container"},
    {"Packet socket created in container", "packet_socket_created_in_container"},
    {"Read sensitive file untrusted", "read_sensitive_file_untrusted"},
    {"Terminal shell in container", "terminal_shell_in_container"},
    {"Write below binary dir", "write_below_binary_dir"},
    {"Write below etc", "write_below_etc"},
};
#define N_SAMPLE_RULES (sizeof(sample_rules) / sizeof(sample_rules[0]))

static const char *slug_of(const char *rule)
{
    for (size_t i = 0; i < N_SAMPLE_RULES; i++)
        if (strcmp(sample_rules[i].rule, rule) == 0)
            return sample_rules[i].slug;
    return NULL;
}

/* Asserts subject_slug(rule) == expected (NULL: -1), with a generous buffer. */
static void check_slug(const char *rule, const char *expected)
{
    char out[256];
    memset(out, 'X', sizeof(out));
    int n = subject_slug(rule, out, sizeof(out));
    if (expected == NULL) {
        if (n != -1)
            fail_msg("slug of \"%s\": expected -1, got %d", rule, n);
        return;
    }
    if (n != (int)strlen(expected) || strcmp(out, expected) != 0)
        fail_msg("slug of \"%s\": expected \"%s\", got %d \"%.*s\"", rule, expected, n, n > 0 ? n : 0, out);
}

static void test_slug_sample_rules(void **state)
{
    (void)state;
    assert_int_equal(N_SAMPLE_RULES, 14);
    for (size_t i = 0; i < N_SAMPLE_RULES; i++)
        check_slug(sample_rules[i].rule, sample_rules[i].slug);
}

static void test_slug_punctuation(void **state)
{
    (void)state;
    check_slug("  --Hello, World!!  ", "hello_world");
    check_slug("!leading", "leading");
    check_slug("trailing?!", "trailing");
    check_slug("a...b", "a_b");
    check_slug("a - / : b", "a_b");
    check_slug("a_b", "a_b");
    check_slug("a__b", "a_b");
    check_slug("_a_", "a");
    check_slug("a\tb\nc", "a_b_c");
}

static void test_slug_case_and_digits(void **state)
{
    (void)state;
    check_slug("ABC", "abc");
    check_slug("MiXeD CaSe", "mixed_case");
    check_slug("Rule 42 v2", "rule_42_v2");
    check_slug("2024", "2024");
    check_slug("K8s API", "k8s_api");
}

static void test_slug_non_ascii(void **state)
{
    (void)state;
    check_slug("caf\xc3\xa9 cr\xc3\xa8me", "caf_cr_me"); /* each UTF-8 byte is outside [a-z0-9] */
    check_slug("\xc3\x89t\xc3\xa9", "t");                /* "Été": the accented letters vanish */
    check_slug("x\xe2\x82\xacy", "x_y");                 /* a 3-byte character is one gap */
    check_slug("\xf0\x9f\x98\x80 shell", "shell");       /* a leading emoji */
    check_slug("\xe6\x97\xa5\xe6\x9c\xac", NULL);        /* only non-ASCII */
}

static void test_slug_empty(void **state)
{
    (void)state;
    check_slug("", NULL);
    check_slug("!!!", NULL);
    check_slug("___", NULL);
    check_slug(" . / : ", NULL);
}

static void test_slug_buffer_size(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(subject_slug("abc", out, 4), 3); /* exactly fits "abc\0" */
    assert_string_equal(out, "abc");
    assert_int_equal(subject_slug("abc", out, 3), -1);
    assert_int_equal(subject_slug("abc", out, 1), -1);
    assert_int_equal(subject_slug("abc", out, 0), -1);
    assert_int_equal(subject_slug("a b", out, 4), 3);
    assert_string_equal(out, "a_b");
    assert_int_equal(subject_slug("a b", out, 3), -1);  /* the '_' does not fit with the 'b' */
    assert_int_equal(subject_slug("ab!!!", out, 3), 2); /* trailing punctuation takes no room */
    assert_string_equal(out, "ab");
    assert_int_equal(subject_slug("Terminal shell in container", out, sizeof(out)), -1);
}

static void test_subject_for_alert(void **state)
{
    (void)state;
    struct alert a;
    char out[SUBJECT_MAX];
    memset(&a, 0, sizeof(a));
    a.rule = "Terminal shell in container";
    a.priority = PRIORITY_NOTICE;
    assert_int_equal(subject_for_alert(&a, out, sizeof(out)), (int)strlen("falco.notice.terminal_shell_in_container"));
    assert_string_equal(out, "falco.notice.terminal_shell_in_container");

    a.priority = PRIORITY_INFORMATIONAL;
    a.rule = "Launch Privileged Container";
    assert_true(subject_for_alert(&a, out, sizeof(out)) > 0);
    assert_string_equal(out, "falco.informational.launch_privileged_container");

    a.priority = PRIORITY_EMERGENCY;
    a.rule = "!!!";
    assert_int_equal(subject_for_alert(&a, out, sizeof(out)), -1);

    a.rule = "ab";
    assert_int_equal(subject_for_alert(&a, out, sizeof("falco.emergency.ab")), (int)strlen("falco.emergency.ab"));
    assert_string_equal(out, "falco.emergency.ab");
    assert_int_equal(subject_for_alert(&a, out, sizeof("falco.emergency.ab") - 1), -1);
    assert_int_equal(subject_for_alert(&a, out, sizeof("falco.emergency.")), -1);
    assert_int_equal(subject_for_alert(&a, out, 4), -1);

    /* The longest rule an alert may carry still fits SUBJECT_MAX. */
    char rule[ALERT_MAX_RULE + 1];
    memset(rule, 'a', ALERT_MAX_RULE);
    rule[ALERT_MAX_RULE] = 0;
    a.rule = rule;
    a.priority = PRIORITY_INFORMATIONAL;
    assert_int_equal(subject_for_alert(&a, out, sizeof(out)), (int)strlen("falco.informational.") + ALERT_MAX_RULE);
}

/* The priority token an alert's JSON priority should give, derived here without playbookd's code. */
static int expected_token(const cJSON *priority, char *out, size_t size)
{
    static const char *const by_number[] = {"emergency", "alert",  "critical",      "error",
                                            "warning",   "notice", "informational", "debug"};
    if (cJSON_IsNumber(priority)) {
        int p = priority->valueint;
        if (p < 0 || p > 7)
            return -1;
        snprintf(out, size, "%s", by_number[p]);
        return 0;
    }
    if (!cJSON_IsString(priority) || strlen(priority->valuestring) >= size)
        return -1;
    size_t i = 0;
    for (; priority->valuestring[i]; i++)
        out[i] = (char)tolower((unsigned char)priority->valuestring[i]);
    out[i] = 0;
    if (strcmp(out, "info") == 0)
        snprintf(out, size, "informational");
    return 0;
}

static void check_sample_line(const char *line, size_t len, int lineno, int *seen)
{
    struct alert a;
    struct error err = {{0}};
    char subject[SUBJECT_MAX], token[32], expected[SUBJECT_MAX];
    if (alert_parse(&a, line, len, &err) != 0)
        fail_msg("sample line %d: alert_parse failed: %s", lineno, err.msg);
    const char *slug = slug_of(a.rule);
    if (slug == NULL)
        fail_msg("sample line %d: rule \"%s\" is not in the table", lineno, a.rule);
    for (size_t i = 0; i < N_SAMPLE_RULES; i++)
        if (strcmp(sample_rules[i].rule, a.rule) == 0)
            seen[i]++;

    cJSON *root = cJSON_ParseWithLength(line, len);
    assert_non_null(root);
    if (expected_token(cJSON_GetObjectItemCaseSensitive(root, "priority"), token, sizeof(token)) != 0)
        fail_msg("sample line %d: cannot derive the priority token", lineno);
    cJSON_Delete(root);
    snprintf(expected, sizeof(expected), "falco.%s.%s", token, slug);

    int n = subject_for_alert(&a, subject, sizeof(subject));
    if (n != (int)strlen(expected) || strcmp(subject, expected) != 0)
        fail_msg("sample line %d: expected subject %s, got %d \"%s\"", lineno, expected, n, n > 0 ? subject : "");

    /* Lines the brief singles out: gRPC's numeric enum and a lowercase name. */
    if (lineno == 1)
        assert_string_equal(subject, "falco.critical.terminal_shell_in_container");
    if (lineno == 24 || lineno == 25)
        assert_string_equal(subject, "falco.warning.delete_or_rename_shell_history");
    if (lineno == 21 || lineno == 22)
        assert_string_equal(subject, "falco.debug.falco_internal_syscall_event_drop");
    alert_free(&a);
}

static void test_sample_file(void **state)
{
    (void)state;
    const char *path = getenv("PLAYBOOKD_SAMPLES");
    if (path == NULL || *path == 0)
        path = DEFAULT_SAMPLES;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s (set PLAYBOOKD_SAMPLES)", path);
    int seen[N_SAMPLE_RULES] = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        check_sample_line(line, (size_t)len, lineno, seen);
    }
    free(line);
    fclose(f);
    assert_true(lineno >= 28);
    for (size_t i = 0; i < N_SAMPLE_RULES; i++)
        if (seen[i] == 0)
            fail_msg("rule \"%s\" of the table does not occur in %s", sample_rules[i].rule, path);
}

static void test_subject_template(void **state)
{
    (void)state;
    struct alert a;
    struct error err;
    char out[SUBJECT_MAX];
    memset(&a, 0, sizeof(a));
    a.rule = "Terminal shell in container";
    a.priority = PRIORITY_NOTICE;
    assert_int_equal(subject_template_check(SUBJECT_TEMPLATE_DEFAULT, &err), 0);
    assert_true(subject_from_template(SUBJECT_TEMPLATE_DEFAULT, &a, out, sizeof(out)) > 0);
    assert_string_equal(out, "falco.notice.terminal_shell_in_container"); /* as subject_for_alert */
    assert_int_equal(subject_from_template("FALCO", &a, out, sizeof(out)), 5);
    assert_string_equal(out, "FALCO");
    assert_true(subject_from_template("sec.<rule>.<priority>.x", &a, out, sizeof(out)) > 0);
    assert_string_equal(out, "sec.terminal_shell_in_container.notice.x");
    assert_int_equal(subject_from_template("FALCO", &a, out, 5), -1); /* does not fit */
    assert_int_equal(subject_from_template("a.<rule>", &a, out, 8), -1);
    a.rule = "!!!";
    assert_int_equal(subject_from_template("a.<rule>", &a, out, sizeof(out)), -1); /* no slug */
    assert_int_equal(subject_from_template("FALCO", &a, out, sizeof(out)), 5);     /* not needed */

    const char *valid[] = {"FALCO", "x.<rule>", "<priority>", "a-b_c.<priority>.<rule>"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        assert_int_equal(subject_template_check(valid[i], &err), 0);
    const char *invalid[] = {"", "a..b", ".a", "a.", "a b", "a.*", "a.>", "<host>", "a.<rule", "x\tz"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        if (subject_template_check(invalid[i], &err) != -1)
            fail_msg("template \"%s\" was accepted", invalid[i]);
    char long_template[SUBJECT_MAX];
    memset(long_template, 'a', sizeof(long_template) - 1);
    long_template[sizeof(long_template) - 1] = 0;
    assert_int_equal(subject_template_check(long_template, &err), -1);
}

static void test_match_exact(void **state)
{
    (void)state;
    assert_true(subject_matches("falco.notice.x", "falco.notice.x"));
    assert_false(subject_matches("falco.notice.x", "falco.notice.y"));
    assert_false(subject_matches("falco", "falcon"));
    assert_false(subject_matches("falcon", "falco"));
    assert_false(subject_matches("falco.notice", "Falco.notice")); /* case-sensitive */
    assert_true(subject_matches("a", "a"));
}

static void test_match_star(void **state)
{
    (void)state;
    assert_true(subject_matches("falco.*.x", "falco.notice.x"));
    assert_false(subject_matches("falco.*.x", "falco.x"));
    assert_false(subject_matches("falco.*.x", "falco.a.b.x"));
    assert_false(subject_matches("falco.*", "falco.a.b"));
    assert_true(subject_matches("*", "a"));
    assert_false(subject_matches("*", "a.b"));
    assert_false(subject_matches("*", ""));
    assert_false(subject_matches("*.*", "a"));
    assert_true(subject_matches("*.*", "a.b"));
    assert_false(subject_matches("*.*", "a.b.c"));
    assert_true(subject_matches("falco.*.*", "falco.notice.terminal_shell_in_container"));
    assert_false(subject_matches("falco.*.*", "falco.notice"));
}

static void test_match_gt(void **state)
{
    (void)state;
    assert_true(subject_matches("falco.>", "falco.a"));
    assert_true(subject_matches("falco.>", "falco.a.b.c"));
    assert_false(subject_matches("falco.>", "falco")); /* '>' needs at least one token */
    assert_false(subject_matches("falco.>", "other.a"));
    assert_true(subject_matches(">", "a"));
    assert_true(subject_matches(">", "a.b.c"));
    assert_false(subject_matches(">", ""));
    assert_true(subject_matches("*.>", "a.b"));
    assert_false(subject_matches("*.>", "a"));
}

static void test_match_length(void **state)
{
    (void)state;
    assert_false(subject_matches("a.b.c", "a.b"));
    assert_false(subject_matches("a.b", "a.b.c"));
    assert_false(subject_matches("a.b.*", "a.b"));
    assert_false(subject_matches("", "a"));
    assert_false(subject_matches("a", ""));
    assert_false(subject_matches("", ""));
}

static void test_match_empty_tokens(void **state)
{
    (void)state;
    const char *patterns[] = {">", "*", "*.*", "*.*.*", "a.>", "a.*.b", "a..b", "*.a", "a.*", "a.", ".a", ""};
    const char *subjects[] = {"a..b", ".a", "a.", "", ".", "..", "a.b..c", "a.b."};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
        for (size_t j = 0; j < sizeof(subjects) / sizeof(subjects[0]); j++)
            if (subject_matches(patterns[i], subjects[j]))
                fail_msg("pattern \"%s\" matched malformed subject \"%s\"", patterns[i], subjects[j]);
}

static void test_match_partial_wildcards(void **state)
{
    (void)state;
    assert_false(subject_matches("falco.no*", "falco.notice"));
    assert_false(subject_matches("falco.*ice", "falco.notice"));
    assert_false(subject_matches("falco.n>", "falco.n.x"));
    assert_false(subject_matches("falco.n>", "falco.notice"));
    assert_false(subject_matches("a*", "ab"));
    assert_false(subject_matches("*a", "ba"));
    /* As in NATS, such a token is literal text. */
    assert_true(subject_matches("a*", "a*"));
    assert_false(subject_matches("a>", "a.b"));
}

static void check_pattern_error(const char *pattern, const char *reason)
{
    struct error err = {{0}};
    if (subject_pattern_check(pattern, &err) != -1)
        fail_msg("pattern \"%s\" was accepted", pattern);
    if (strcmp(err.msg, reason) != 0)
        fail_msg("pattern \"%s\": expected \"%s\", got \"%s\"", pattern, reason, err.msg);
}

static void test_pattern_check_valid(void **state)
{
    (void)state;
    const char *valid[] = {"falco.>", ">",         "*",        "*.*", "falco.*.terminal_shell_in_container",
                           "a.b.c",   "falco.*.>", "a-b_c.D9", "*.>"};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct error err = {{0}};
        if (subject_pattern_check(valid[i], &err) != 0)
            fail_msg("pattern \"%s\" was rejected: %s", valid[i], err.msg);
    }
    assert_int_equal(subject_pattern_check("a.b", NULL), 0);
    assert_int_equal(subject_pattern_check("a..b", NULL), -1); /* err may be NULL */
}

static void test_pattern_check_invalid(void **state)
{
    (void)state;
    check_pattern_error("", "empty pattern");
    check_pattern_error("a.>.b", "pattern \"a.>.b\": '>' must be the last token");
    check_pattern_error(">.a", "pattern \">.a\": '>' must be the last token");
    check_pattern_error("a*", "pattern \"a*\": '*' must be a whole token");
    check_pattern_error("a.*b.c", "pattern \"a.*b.c\": '*' must be a whole token");
    check_pattern_error("**", "pattern \"**\": '*' must be a whole token");
    check_pattern_error("a.>b", "pattern \"a.>b\": '>' must be a whole token");
    check_pattern_error(">>", "pattern \">>\": '>' must be a whole token");
    check_pattern_error("a..b", "pattern \"a..b\" has an empty token");
    check_pattern_error(".a", "pattern \".a\" has an empty token");
    check_pattern_error("a.", "pattern \"a.\" has an empty token");
    check_pattern_error(".", "pattern \".\" has an empty token");
    check_pattern_error("a b", "pattern \"a b\" contains whitespace or a control character");
    check_pattern_error("a\tb", "pattern \"a\tb\" contains whitespace or a control character");
    check_pattern_error("a.b\n", "pattern \"a.b\n\" contains whitespace or a control character");
    check_pattern_error("a.\x7f", "pattern \"a.\x7f\" contains whitespace or a control character");
    check_pattern_error(" ", "pattern \" \" contains whitespace or a control character");
}

/*
 * BUG (fails on x86-64): lib/subject.c:63 tests `p[i] <= ' '` on a plain char. Where char is signed (x86),
 * every byte >= 0x80 is negative, so a UTF-8 pattern such as "falco.notice.caf\xc3\xa9" is refused as
 * containing "whitespace or a control character"; where char is unsigned (arm64) the same pattern passes.
 * Either outcome may be the intended one, but not both, and not with that reason.
 */
static void test_pattern_check_non_ascii(void **state)
{
    (void)state;
    const char *patterns[] = {"falco.notice.caf\xc3\xa9", "\xe6\x97\xa5", "a.\xff", "a.\x80.>"};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        struct error err = {{0}};
        if (subject_pattern_check(patterns[i], &err) != 0 && strstr(err.msg, "whitespace or a control") != NULL)
            fail_msg("non-ASCII bytes reported as whitespace/control (lib/subject.c:63, signed char): %s", err.msg);
    }
    /* Matching is byte-wise, whatever the check decides. */
    assert_true(subject_matches("falco.notice.caf\xc3\xa9", "falco.notice.caf\xc3\xa9"));
    assert_true(subject_matches("falco.*.caf\xc3\xa9", "falco.notice.caf\xc3\xa9"));
    assert_false(subject_matches("falco.notice.caf\xc3\xa9", "falco.notice.cafe"));
}

static void test_priority_parse(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum priority p;
    } cases[] = {
        {"Emergency", PRIORITY_EMERGENCY},
        {"EMERGENCY", PRIORITY_EMERGENCY},
        {"Alert", PRIORITY_ALERT},
        {"alert", PRIORITY_ALERT},
        {"Critical", PRIORITY_CRITICAL},
        {"cRiTiCaL", PRIORITY_CRITICAL},
        {"Error", PRIORITY_ERROR},
        {"ERROR", PRIORITY_ERROR},
        {"Warning", PRIORITY_WARNING},
        {"warning", PRIORITY_WARNING},
        {"Notice", PRIORITY_NOTICE},
        {"NOTICE", PRIORITY_NOTICE},
        {"Informational", PRIORITY_INFORMATIONAL},
        {"informational", PRIORITY_INFORMATIONAL},
        {"Info", PRIORITY_INFORMATIONAL},
        {"INFO", PRIORITY_INFORMATIONAL},
        {"info", PRIORITY_INFORMATIONAL},
        {"Debug", PRIORITY_DEBUG},
        {"dEBUG", PRIORITY_DEBUG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum priority p = PRIORITY_COUNT;
        if (priority_parse(cases[i].name, &p) != 0 || p != cases[i].p)
            fail_msg("priority_parse(\"%s\"): got %d", cases[i].name, (int)p);
    }
    const char *unknown[] = {"", "Warn", "Informationa", "Notice ", " Notice", "Crit", "4", "Emergency!", "Infos"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        enum priority p = PRIORITY_NOTICE;
        if (priority_parse(unknown[i], &p) != -1)
            fail_msg("priority_parse(\"%s\") accepted it", unknown[i]);
        assert_int_equal(p, PRIORITY_NOTICE); /* untouched */
    }
}

static void test_priority_names(void **state)
{
    (void)state;
    static const char *const names[] = {"Emergency", "Alert",  "Critical",      "Error",
                                        "Warning",   "Notice", "Informational", "Debug"};
    static const char *const tokens[] = {"emergency", "alert",  "critical",      "error",
                                         "warning",   "notice", "informational", "debug"};
    for (int p = 0; p < PRIORITY_COUNT; p++) {
        assert_string_equal(priority_name((enum priority)p), names[p]);
        assert_string_equal(priority_token((enum priority)p), tokens[p]);
        enum priority back;
        assert_int_equal(priority_parse(names[p], &back), 0);
        assert_int_equal(back, p);
    }
    assert_string_equal(priority_name(PRIORITY_COUNT), "Unknown");
    assert_string_equal(priority_token(PRIORITY_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slug_sample_rules),
        cmocka_unit_test(test_slug_punctuation),
        cmocka_unit_test(test_slug_case_and_digits),
        cmocka_unit_test(test_slug_non_ascii),
        cmocka_unit_test(test_slug_empty),
        cmocka_unit_test(test_slug_buffer_size),
        cmocka_unit_test(test_subject_for_alert),
        cmocka_unit_test(test_subject_template),
        cmocka_unit_test(test_sample_file),
        cmocka_unit_test(test_match_exact),
        cmocka_unit_test(test_match_star),
        cmocka_unit_test(test_match_gt),
        cmocka_unit_test(test_match_length),
        cmocka_unit_test(test_match_empty_tokens),
        cmocka_unit_test(test_match_partial_wildcards),
        cmocka_unit_test(test_pattern_check_valid),
        cmocka_unit_test(test_pattern_check_invalid),
        cmocka_unit_test(test_pattern_check_non_ascii),
        cmocka_unit_test(test_priority_parse),
        cmocka_unit_test(test_priority_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
