/* test_alert.c: unit tests for alert_parse (good input, every rejection and its reason) and alert_field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/alert.h"

/* A complete alert as Falco's json_output writes it, with every kind of output field. */
static const char good[] =
    "{\"output\":\"13:44:05.478445995: Critical A shell was spawned\",\"priority\":\"Critical\","
    "\"rule\":\"Terminal shell in container\",\"time\":\"2023-05-25T13:44:05.478445995Z\","
    "\"hostname\":\"falco-xczjd\",\"source\":\"syscall\",\"tags\":[\"container\",\"shell\",\"mitre_execution\"],"
    "\"output_fields\":{\"k8s.pod.name\":\"kubecon\",\"k8s.ns.name\":\"default\",\"container.id\":\"ee97d9c4186f\","
    "\"evt.time\":1685022245478445995,\"proc.pid\":4242,\"user.loginuid\":-1,\"ratio\":1.5,\"tenth\":0.1,"
    "\"proc.tty\":true,\"evt.failed\":false,\"container.image.tag\":null,\"obj\":{\"a\":1},\"arr\":[1,2],"
    "\"big\":9007199254740992,\"below\":9007199254740991,\"zero\":0}}";

static void parse_ok(struct alert *a, const char *json)
{
    struct error err = {{0}};
    if (alert_parse(a, json, strlen(json), &err) != 0)
        fail_msg("alert_parse failed: %s\ninput: %s", err.msg, json);
}

/* Parses data[0..len), expects failure with exactly `reason`, and that nothing is left to free. */
static void check_reject_len(const char *data, size_t len, const char *reason)
{
    struct alert a;
    struct error err = {{0}};
    memset(&a, 0x5a, sizeof(a));
    if (alert_parse(&a, data, len, &err) != -1)
        fail_msg("accepted: %.*s", (int)(len < 200 ? len : 200), data);
    if (strcmp(err.msg, reason) != 0)
        fail_msg("input %.*s\nexpected reason: %s\n     got reason: %s", (int)(len < 200 ? len : 200), data, reason,
                 err.msg);
    assert_null(a.root);                                    /* "a holds nothing to free" */
    alert_free(&a);                                         /* and freeing it anyway is harmless */
    assert_int_equal(alert_parse(&a, data, len, NULL), -1); /* err may be NULL */
}

static void check_reject(const char *json, const char *reason)
{
    check_reject_len(json, strlen(json), reason);
}

static void test_parse_fields(void **state)
{
    (void)state;
    struct alert a;
    parse_ok(&a, good);
    assert_non_null(a.root);
    assert_string_equal(a.rule, "Terminal shell in container");
    assert_int_equal(a.priority, PRIORITY_CRITICAL);
    assert_string_equal(a.output, "13:44:05.478445995: Critical A shell was spawned");
    assert_string_equal(a.time, "2023-05-25T13:44:05.478445995Z");
    assert_string_equal(a.hostname, "falco-xczjd");
    assert_string_equal(a.source, "syscall");
    assert_non_null(a.tags);
    assert_true(cJSON_IsArray(a.tags));
    assert_int_equal(cJSON_GetArraySize(a.tags), 3);
    assert_string_equal(cJSON_GetArrayItem(a.tags, 2)->valuestring, "mitre_execution");
    assert_non_null(a.fields);
    assert_true(cJSON_IsObject(a.fields));
    alert_free(&a);
    assert_null(a.root);
    alert_free(&a); /* twice is harmless */
}

static void test_parse_minimal(void **state)
{
    (void)state;
    struct alert a;
    parse_ok(&a, "{\"rule\":\"r\",\"priority\":\"Notice\"}");
    assert_string_equal(a.rule, "r");
    assert_int_equal(a.priority, PRIORITY_NOTICE);
    assert_string_equal(a.output, "");
    assert_string_equal(a.time, "");
    assert_string_equal(a.hostname, "");
    assert_string_equal(a.source, "");
    assert_null(a.tags);
    assert_null(a.fields); /* output_fields absent is fine */
    char buf[32];
    assert_null(alert_field(&a, "k8s.pod.name", buf, sizeof(buf)));
    alert_free(&a);

    /* Optional members of the wrong kind read as absent. */
    parse_ok(&a, "{\"rule\":\"r\",\"priority\":\"Debug\",\"output\":5,\"time\":true,\"hostname\":null,"
                 "\"source\":[],\"tags\":\"x\"}");
    assert_string_equal(a.output, "");
    assert_string_equal(a.time, "");
    assert_string_equal(a.hostname, "");
    assert_string_equal(a.source, "");
    assert_null(a.tags);
    alert_free(&a);

    /* Surrounding whitespace, as a line reader leaves it, is fine. */
    parse_ok(&a, " \t{\"rule\":\"r\",\"priority\":\"Debug\"}\r\n \t");
    alert_free(&a);

    /* Member names are case-sensitive. */
    check_reject("{\"Rule\":\"r\",\"priority\":\"Notice\"}", "missing rule");
}

static void test_parse_time(void **state)
{
    (void)state;
    struct alert a;
    parse_ok(&a, "{\"time\":{\"seconds\":1570094449,\"nanos\":620298462},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "2019-10-03T09:20:49.620298462Z");
    assert_int_equal(a.priority, PRIORITY_WARNING);
    alert_free(&a);

    parse_ok(&a, "{\"time\":{\"seconds\":0},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "1970-01-01T00:00:00.000000000Z");
    alert_free(&a);

    parse_ok(&a, "{\"time\":{\"seconds\":253402300799,\"nanos\":999999999},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "9999-12-31T23:59:59.999999999Z");
    alert_free(&a);

    /* Out of range or malformed: no time rather than a wrong one. */
    parse_ok(&a, "{\"time\":{\"seconds\":-1,\"nanos\":5},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "");
    alert_free(&a);
    parse_ok(&a, "{\"time\":{\"seconds\":253402300800},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "");
    alert_free(&a);
    parse_ok(&a, "{\"time\":{\"seconds\":\"1570094449\"},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "");
    alert_free(&a);
    parse_ok(&a, "{\"time\":[1570094449],\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "");
    alert_free(&a);

    /* Bad nanos are dropped, the seconds kept. */
    parse_ok(&a, "{\"time\":{\"seconds\":1570094449,\"nanos\":1000000000},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "2019-10-03T09:20:49.000000000Z");
    alert_free(&a);
    parse_ok(&a, "{\"time\":{\"seconds\":1570094449,\"nanos\":-3},\"priority\":4,\"rule\":\"r\"}");
    assert_string_equal(a.time, "2019-10-03T09:20:49.000000000Z");
    alert_free(&a);
}

static void test_parse_priorities(void **state)
{
    (void)state;
    static const char *const names[] = {"Emergency", "alert",  "CRITICAL",      "Error",
                                        "warning",   "Notice", "Informational", "Debug"};
    for (int p = 0; p < PRIORITY_COUNT; p++) {
        char json[128];
        struct alert a;
        snprintf(json, sizeof(json), "{\"rule\":\"r\",\"priority\":%d}", p);
        parse_ok(&a, json);
        assert_int_equal(a.priority, p);
        alert_free(&a);
        snprintf(json, sizeof(json), "{\"rule\":\"r\",\"priority\":%d.0}", p);
        parse_ok(&a, json);
        assert_int_equal(a.priority, p);
        alert_free(&a);
        snprintf(json, sizeof(json), "{\"rule\":\"r\",\"priority\":\"%s\"}", names[p]);
        parse_ok(&a, json);
        assert_int_equal(a.priority, p);
        alert_free(&a);
    }
    struct alert a;
    parse_ok(&a, "{\"rule\":\"r\",\"priority\":\"Info\"}");
    assert_int_equal(a.priority, PRIORITY_INFORMATIONAL);
    alert_free(&a);
}

static void test_reject_json(void **state)
{
    (void)state;
    check_reject("hello", "invalid JSON near byte 0");
    check_reject("{\"rule\":", "invalid JSON near byte 7");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\"} x", "trailing data after the JSON object at byte 33");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\"}{}", "trailing data after the JSON object at byte 32");
    check_reject("[1]", "not a JSON object but an array");
    check_reject("[{\"rule\":\"r\",\"priority\":\"Notice\"}]", "not a JSON object but an array");
    check_reject("\"s\"", "not a JSON object but a string");
    check_reject("42", "not a JSON object but a number");
    check_reject("null", "not a JSON object but null");
    check_reject("true", "not a JSON object but a boolean");
    check_reject_len("", 0, "empty message");
    check_reject_len("{}", 0, "empty message");
}

static void test_reject_deep_nesting(void **state)
{
    (void)state;
    /* cJSON stops at 1000 levels: a clean rejection, no stack overflow. */
    size_t depth = 5000;
    const char *head = "{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":{\"x\":";
    size_t hl = strlen(head);
    char *json = malloc(hl + 2 * depth + 3);
    assert_non_null(json);
    memcpy(json, head, hl);
    memset(json + hl, '[', depth);
    memset(json + hl + depth, ']', depth);
    memcpy(json + hl + 2 * depth, "}}", 3);
    struct alert a;
    struct error err = {{0}};
    assert_int_equal(alert_parse(&a, json, strlen(json), &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON near byte"));
    free(json);
}

static void test_reject_rule(void **state)
{
    (void)state;
    check_reject("{\"priority\":\"Notice\"}", "missing rule");
    check_reject("{\"rule\":\"\",\"priority\":\"Notice\"}", "empty rule");
    check_reject("{\"rule\":5,\"priority\":\"Notice\"}", "rule is a number, not a string");
    check_reject("{\"rule\":null,\"priority\":\"Notice\"}", "rule is null, not a string");
    check_reject("{\"rule\":true,\"priority\":\"Notice\"}", "rule is a boolean, not a string");
    check_reject("{\"rule\":[\"r\"],\"priority\":\"Notice\"}", "rule is an array, not a string");
    check_reject("{\"rule\":{},\"priority\":\"Notice\"}", "rule is an object, not a string");

    /* ALERT_MAX_RULE bytes pass, one more does not. */
    char json[ALERT_MAX_RULE + 128];
    char rule[ALERT_MAX_RULE + 2];
    memset(rule, 'r', sizeof(rule) - 1);
    rule[ALERT_MAX_RULE] = 0;
    snprintf(json, sizeof(json), "{\"rule\":\"%s\",\"priority\":\"Notice\"}", rule);
    struct alert a;
    parse_ok(&a, json);
    assert_int_equal(strlen(a.rule), ALERT_MAX_RULE);
    alert_free(&a);
    rule[ALERT_MAX_RULE] = 'r';
    rule[ALERT_MAX_RULE + 1] = 0;
    snprintf(json, sizeof(json), "{\"rule\":\"%s\",\"priority\":\"Notice\"}", rule);
    check_reject(json, "rule too long (1025 bytes, limit 1024)");
}

static void test_reject_priority(void **state)
{
    (void)state;
    check_reject("{\"rule\":\"r\"}", "missing priority");
    check_reject("{\"rule\":\"r\",\"priority\":\"Warn\"}", "unknown priority \"Warn\"");
    check_reject("{\"rule\":\"r\",\"priority\":\"\"}", "unknown priority \"\"");
    /* The shown name is cut to 39 bytes. */
    check_reject("{\"rule\":\"r\",\"priority\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                 "unknown priority \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
    check_reject("{\"rule\":\"r\",\"priority\":8}", "unknown priority 8");
    check_reject("{\"rule\":\"r\",\"priority\":-1}", "unknown priority -1");
    check_reject("{\"rule\":\"r\",\"priority\":4.5}", "unknown priority 4.5");
    check_reject("{\"rule\":\"r\",\"priority\":1e300}", "unknown priority 1e+300");
    check_reject("{\"rule\":\"r\",\"priority\":null}", "priority is null, not a string");
    check_reject("{\"rule\":\"r\",\"priority\":true}", "priority is a boolean, not a string");
    check_reject("{\"rule\":\"r\",\"priority\":[4]}", "priority is an array, not a string");
    check_reject("{\"rule\":\"r\",\"priority\":{\"n\":4}}", "priority is an object, not a string");
}

static void test_reject_size(void **state)
{
    (void)state;
    /* Exactly ALERT_MAX_BYTES: a valid object padded with spaces is accepted. */
    const char *obj = "{\"rule\":\"r\",\"priority\":\"Notice\"}";
    size_t n = strlen(obj);
    char *big = malloc(ALERT_MAX_BYTES + 1);
    assert_non_null(big);
    memcpy(big, obj, n);
    memset(big + n, ' ', ALERT_MAX_BYTES + 1 - n);
    struct alert a;
    struct error err = {{0}};
    if (alert_parse(&a, big, ALERT_MAX_BYTES, &err) != 0)
        fail_msg("ALERT_MAX_BYTES rejected: %s", err.msg);
    alert_free(&a);
    check_reject_len(big, ALERT_MAX_BYTES + 1, "message too large (1048577 bytes, limit 1048576)");
    free(big);
}

static void test_reject_utf8(void **state)
{
    (void)state;
    check_reject("{\"rule\":\"\xc0\xaf\",\"priority\":\"Notice\"}", "invalid UTF-8");         /* overlong '/' */
    check_reject("{\"rule\":\"\xe0\x80\xaf\",\"priority\":\"Notice\"}", "invalid UTF-8");     /* overlong, 3 bytes */
    check_reject("{\"rule\":\"\xed\xa0\x80\",\"priority\":\"Notice\"}", "invalid UTF-8");     /* surrogate D800 */
    check_reject("{\"rule\":\"a\xff\",\"priority\":\"Notice\"}", "invalid UTF-8");            /* stray 0xff */
    check_reject("{\"rule\":\"a\x80\",\"priority\":\"Notice\"}", "invalid UTF-8");            /* lone continuation */
    check_reject("{\"rule\":\"\xe2\x82\",\"priority\":\"Notice\"}", "invalid UTF-8");         /* truncated */
    check_reject("{\"rule\":\"\xf4\x90\x80\x80\",\"priority\":\"Notice\"}", "invalid UTF-8"); /* > U+10FFFF */
    /* A sequence cut by the end of the message. */
    check_reject_len("{\"rule\":\"r\",\"priority\":\"Notice\"}\xc3\xa9",
                     strlen("{\"rule\":\"r\",\"priority\":\"Notice\"}") + 1, "invalid UTF-8");
    /* A NUL byte inside the message. */
    static const char nul[] = "{\"rule\":\"a\0b\",\"priority\":\"Notice\"}";
    check_reject_len(nul, sizeof(nul) - 1, "invalid UTF-8");
    static const char nul_after[] = "{\"rule\":\"r\",\"priority\":\"Notice\"}\0";
    check_reject_len(nul_after, sizeof(nul_after) - 1, "invalid UTF-8");

    /* Well-formed multi-byte text passes, and an escaped NUL is not a raw NUL. */
    struct alert a;
    parse_ok(&a, "{\"rule\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\"priority\":\"Notice\"}");
    assert_string_equal(a.rule, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    alert_free(&a);
}

static void test_reject_output_fields(void **state)
{
    (void)state;
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":null}",
                 "output_fields is null, not an object");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":3}",
                 "output_fields is a number, not an object");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":\"k=v\"}",
                 "output_fields is a string, not an object");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":[]}",
                 "output_fields is an array, not an object");
    check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":false}",
                 "output_fields is a boolean, not an object");
}

static void test_reject_nul_escape(void **state)
{
    (void)state;
    const char *reason = "a string holds a NUL character (\\u0000)";
    check_reject("{\"rule\":\"R\",\"priority\":\"Notice\",\"output_fields\":{\"k8s.pod.name\":\"web-0\\u0000/../x\"}}",
                 reason);
    check_reject("{\"rule\":\"R\\u0000x\",\"priority\":\"Notice\"}", reason);
    check_reject("{\"rule\":\"R\",\"priority\":\"Notice\",\"a\\u0000\":1}", reason);

    /* An escaped backslash followed by u0000 is text, not a NUL; and \u0001 is no NUL either. */
    struct alert a;
    struct error err;
    const char *ok[] = {
        "{\"rule\":\"R\",\"priority\":\"Notice\",\"output\":\"C:\\\\u0000\"}",
        "{\"rule\":\"R\",\"priority\":\"Notice\",\"output\":\"\\\"\\u0001\"}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (alert_parse(&a, ok[i], strlen(ok[i]), &err) != 0)
            fail_msg("rejected %s: %s", ok[i], err.msg);
        alert_free(&a);
    }
}

static void check_field(const struct alert *a, const char *key, const char *expected)
{
    char buf[64];
    memset(buf, 'X', sizeof(buf));
    const char *v = alert_field(a, key, buf, sizeof(buf));
    if (expected == NULL) {
        if (v != NULL)
            fail_msg("field %s: expected NULL, got \"%s\"", key, v);
        return;
    }
    if (v == NULL)
        fail_msg("field %s: expected \"%s\", got NULL", key, expected);
    if (strcmp(v, expected) != 0)
        fail_msg("field %s: expected \"%s\", got \"%s\"", key, expected, v);
}

static void test_field_kinds(void **state)
{
    (void)state;
    struct alert a;
    char buf[64];
    parse_ok(&a, good);
    check_field(&a, "k8s.pod.name", "kubecon");
    check_field(&a, "k8s.ns.name", "default");
    check_field(&a, "container.id", "ee97d9c4186f");
    check_field(&a, "proc.pid", "4242");
    check_field(&a, "user.loginuid", "-1");
    check_field(&a, "zero", "0");
    check_field(&a, "ratio", "1.5");
    check_field(&a, "proc.tty", "true");
    check_field(&a, "evt.failed", "false");
    check_field(&a, "container.image.tag", NULL); /* null */
    check_field(&a, "obj", NULL);                 /* object */
    check_field(&a, "arr", NULL);                 /* array */
    check_field(&a, "missing.key", NULL);
    check_field(&a, "K8S.POD.NAME", NULL); /* keys are case-sensitive */

    /* A string comes back as is, pointing into the tree, not into buf. */
    const char *v = alert_field(&a, "k8s.pod.name", buf, sizeof(buf));
    assert_true(v != buf);

    /*
     * As Falco prints them: integers in full, other numbers in the fewest digits that read back the same.
     * JSON numbers are doubles in cJSON: past 2^53 the last digits of an integer are rounded (Falco's
     * nanosecond evt.time 1685022245478445995 comes back with its last digits rounded), never in
     * exponent form.
     */
    check_field(&a, "below", "9007199254740991");
    check_field(&a, "big", "9007199254740992");
    const char *t = alert_field(&a, "evt.time", buf, sizeof(buf));
    assert_non_null(t);
    assert_int_equal(strlen(t), 19);
    assert_memory_equal(t, "168502224547844", 15);
    check_field(&a, "tenth", "0.1");
    alert_free(&a);
}

static void test_field_small_buffer(void **state)
{
    (void)state;
    struct alert a;
    char buf[4];
    parse_ok(&a, "{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":{\"n\":123456,\"b\":false}}");
    /* Rendered text is cut to the buffer, never written past it. */
    assert_string_equal(alert_field(&a, "n", buf, sizeof(buf)), "123");
    assert_string_equal(alert_field(&a, "b", buf, sizeof(buf)), "fal");
    alert_free(&a);
}

static void test_field_sample_kinds(void **state)
{
    (void)state;
    /* Line 22 of the public sample: numbers where line 21 has strings. */
    struct alert a;
    parse_ok(&a,
             "{\"hostname\":\"host\",\"output\":\"Falco internal: syscall event drop. 815508 system calls dropped in "
             "last second.\",\"output_fields\":{\"n_drops\":815508,\"n_drops_buffer_total\":815508,\"n_drops_bug\":0,"
             "\"n_evts\":2270350},\"priority\":\"Debug\",\"rule\":\"Falco internal: syscall event drop\","
             "\"time\":\"2023-03-03T03:03:03.000000003Z\"}");
    check_field(&a, "n_drops", "815508");
    check_field(&a, "n_drops_bug", "0");
    check_field(&a, "n_evts", "2270350");
    assert_int_equal(a.priority, PRIORITY_DEBUG);
    alert_free(&a);
}

static void test_reparse_reuses_struct(void **state)
{
    (void)state;
    /* A failed parse after a good one (freed) leaves nothing behind; LeakSanitizer checks the rest. */
    struct alert a;
    for (int i = 0; i < 50; i++) {
        parse_ok(&a, good);
        alert_free(&a);
        check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":[1,2,3]}",
                     "output_fields is an array, not an object");
        check_reject("{\"rule\":\"r\",\"priority\":\"Nope\",\"output_fields\":{\"a\":\"b\"}}",
                     "unknown priority \"Nope\"");
        check_reject("{\"rule\":\"\",\"priority\":\"Notice\",\"output_fields\":{\"a\":\"b\"}}", "empty rule");
        check_reject("{\"rule\":\"r\",\"priority\":\"Notice\",\"output_fields\":{\"a\":\"b\"}} ]",
                     "trailing data after the JSON object at byte 59");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_fields),         cmocka_unit_test(test_parse_minimal),
        cmocka_unit_test(test_parse_time),           cmocka_unit_test(test_parse_priorities),
        cmocka_unit_test(test_reject_json),          cmocka_unit_test(test_reject_deep_nesting),
        cmocka_unit_test(test_reject_rule),          cmocka_unit_test(test_reject_priority),
        cmocka_unit_test(test_reject_size),          cmocka_unit_test(test_reject_utf8),
        cmocka_unit_test(test_reject_output_fields), cmocka_unit_test(test_reject_nul_escape),
        cmocka_unit_test(test_field_kinds),          cmocka_unit_test(test_field_small_buffer),
        cmocka_unit_test(test_field_sample_kinds),   cmocka_unit_test(test_reparse_reuses_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
