/*
 * test_expiry.c: the encoding of containment that expires (expiry.h), without a network: RFC 3339 times,
 * the marks a change writes (only playbookd's own, the later expiry winning, bounded lists) and the guarded
 * undo patch (only what is recorded and still as playbookd left it; the cordon only when it expires).
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

#include "playbookd/expiry.h"

#define T0 1795402800 /* 2026-11-23T03:00:00Z */

static void test_times(void **state)
{
    (void)state;
    char text[EXPIRY_TIME_MAX];
    time_t t;
    expiry_time_format(T0, text);
    assert_string_equal(text, "2026-11-23T03:00:00Z");
    assert_int_equal(expiry_time_parse(text, &t), 0);
    assert_int_equal(t, T0);
    assert_int_equal(expiry_time_parse("2026-11-23T03:00:00.123456Z", &t), 0);
    assert_int_equal(t, T0);
    const char *bad[] = {"",
                         "2026-11-23T03:00:00",
                         "2026-11-23T03:00:00+01:00",
                         "2026-13-23T03:00:00Z",
                         "2026-11-23 03:00:00Z",
                         "2026-11-23T03:00:00Zjunk",
                         "x2026-11-23T03:00:00Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(expiry_time_parse(bad[i], &t), -1);
}

static cJSON *node(const char *json)
{
    cJSON *n = cJSON_Parse(json);
    assert_non_null(n);
    return n;
}

static void test_plan_marks_only_playbookds_own(void **state)
{
    (void)state;
    cJSON *n = node("{\"metadata\":{\"resourceVersion\":\"7\",\"labels\":{\"team\":\"shop\"}},\"spec\":{\"taints\":"
                    "[{\"key\":\"falco/alert\",\"effect\":\"NoSchedule\"}],\"unschedulable\":true}}");
    const struct expiry_mark marks[] = {
        {.kind = EXPIRY_TAINT, .key = "falco/alert", .value = "NoSchedule"}, /* another's taint */
        {.kind = EXPIRY_TAINT, .key = "falco/alert", .value = "NoExecute"},  /* playbookd adds it now */
        {.kind = EXPIRY_LABEL_SET, .key = "team", .value = "shop"},          /* already so: another's */
        {.kind = EXPIRY_LABEL_SET, .key = "forensics", .value = "true"},
        {.kind = EXPIRY_CORDON}, /* another's cordon: no cordoned-by */
    };
    struct expiry_write w;
    struct action_result res = {0};
    assert_int_equal(expiry_plan(&w, n, 2000, T0, marks, 5, &res), 2);
    assert_string_equal(w.expires_at, "2026-11-23T03:00:02Z");
    assert_string_equal(w.taints, "falco/alert:NoExecute");
    assert_string_equal(w.labels, "forensics=true");
    assert_false(w.cordon);
    cJSON_Delete(n);
}

static void test_plan_keeps_marks_and_the_later_expiry(void **state)
{
    (void)state;
    cJSON *n = node("{\"metadata\":{\"annotations\":{\"playbookd.io/expires-at\":\"2026-11-23T04:00:00Z\","
                    "\"playbookd.io/labels\":\"a=1,b=2\",\"playbookd.io/cordoned-by\":\"playbookd\"},\"labels\":{"
                    "\"a\":\"1\",\"b\":\"2\"}},\"spec\":{\"unschedulable\":true}}");
    const struct expiry_mark marks[] = {{.kind = EXPIRY_LABEL_SET, .key = "a", .value = "3"}, {.kind = EXPIRY_CORDON}};
    struct expiry_write w;
    struct action_result res = {0};
    assert_int_equal(expiry_plan(&w, n, 1500, T0, marks, 2, &res), 2);
    assert_string_equal(w.expires_at, "2026-11-23T04:00:00Z"); /* the later one */
    assert_string_equal(w.labels, "b=2,a=3");                  /* a's entry replaced */
    assert_true(w.cordon);                                     /* playbookd's own cordon */
    assert_int_equal(expiry_plan(&w, n, 7200 * 1000L, T0, marks, 2, &res), 2);
    assert_string_equal(w.expires_at, "2026-11-23T05:00:00Z");
    cJSON_Delete(n);
}

static void test_plan_bounds_its_lists(void **state)
{
    (void)state;
    char key[70], list[EXPIRY_LIST_MAX] = "", json[EXPIRY_LIST_MAX + 200];
    memset(key, 'k', 60);
    key[60] = 0;
    for (int i = 0; strlen(list) + 70 < EXPIRY_LIST_MAX; i++) /* a list of 1,980 to 2,047 bytes */
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d=v,", key, i);
    strcat(list, "z=v");
    snprintf(json, sizeof(json), "{\"metadata\":{\"annotations\":{\"playbookd.io/labels\":\"%s\"}}}", list);
    cJSON *n = node(json);
    const struct expiry_mark mark = {.kind = EXPIRY_LABEL_SET, .key = key, .value = "v"};
    struct expiry_write w;
    struct action_result res = {0};
    assert_int_equal(expiry_plan(&w, n, 1000, T0, &mark, 1, &res), -1);
    assert_non_null(strstr(res.reason, "marks would pass 2048 bytes"));
    cJSON_Delete(n);
}

/* ops (a JSON patch) as text, for comparing. */
static char *ops_text(const cJSON *object, const struct expiry_write *w)
{
    cJSON *ops = cJSON_CreateArray();
    expiry_json_patch(ops, object, w);
    char *text = cJSON_PrintUnformatted(ops);
    cJSON_Delete(ops);
    return text;
}

/* A change made for good takes the same change out of an earlier expiring one's marks; the rest expires. */
static void test_plan_without_expiry_cancels_the_same_change(void **state)
{
    (void)state;
    cJSON *n = node("{\"metadata\":{\"annotations\":{\"playbookd.io/expires-at\":\"2026-11-23T04:00:00Z\","
                    "\"playbookd.io/taints\":\"falco/alert:NoSchedule,x:NoExecute\",\"playbookd.io/labels\":\"a=1\","
                    "\"playbookd.io/cordon\":\"expires\"},\"labels\":{\"playbookd.io/contained\":\"true\"}}}");
    const struct expiry_mark taint = {.kind = EXPIRY_TAINT, .key = "falco/alert", .value = "NoSchedule"};
    const struct expiry_mark other = {.kind = EXPIRY_TAINT, .key = "falco/alert", .value = "NoExecute"};
    const struct expiry_mark label = {.kind = EXPIRY_LABEL_SET, .key = "a", .value = "2"}; /* by key */
    struct expiry_write w;
    struct action_result res = {0};
    assert_int_equal(expiry_plan(&w, n, 0, T0, &other, 1, &res), 0); /* not recorded: nothing to write */
    assert_int_equal(expiry_plan(&w, n, 0, T0, &taint, 1, &res), 1);
    assert_string_equal(w.taints, "x:NoExecute");
    assert_false(w.none_left);
    char *text = ops_text(n, &w); /* the rest keeps its expiry: expires-at untouched */
    assert_string_equal(text,
                        "[{\"op\":\"add\",\"path\":\"/metadata/annotations/playbookd.io~1taints\",\"value\":"
                        "\"x:NoExecute\"},{\"op\":\"add\",\"path\":\"/metadata/annotations/playbookd.io~1labels\","
                        "\"value\":\"a=1\"},{\"op\":\"add\",\"path\":\"/metadata/annotations/playbookd.io~1cordon\","
                        "\"value\":\"expires\"},{\"op\":\"add\",\"path\":\"/metadata/labels/"
                        "playbookd.io~1contained\",\"value\":\"true\"}]");
    free(text);
    cJSON_Delete(n);

    n = node("{\"metadata\":{\"annotations\":{\"playbookd.io/expires-at\":\"2026-11-23T04:00:00Z\",\"playbookd.io/"
             "taints\":\"falco/alert:NoSchedule\",\"playbookd.io/labels\":\"a=1\",\"playbookd.io/cordon\":\"expires\","
             "\"team\":\"shop\"},\"labels\":{\"playbookd.io/contained\":\"true\",\"a\":\"1\"}}}");
    const struct expiry_mark all[] = {taint, label, {.kind = EXPIRY_CORDON}};
    assert_int_equal(expiry_plan(&w, n, 0, T0, all, 3, &res), 3);
    assert_true(w.none_left);
    text = ops_text(n, &w); /* nothing left: every mark removed, nothing else */
    assert_string_equal(text, "[{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1expires-at\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1taints\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1labels\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1cordon\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/labels/playbookd.io~1contained\"}]");
    free(text);
    cJSON *meta = cJSON_CreateObject();
    expiry_merge_patch(meta, &w);
    text = cJSON_PrintUnformatted(meta);
    assert_string_equal(text, "{\"annotations\":{\"playbookd.io/expires-at\":null,\"playbookd.io/taints\":null,"
                              "\"playbookd.io/labels\":null,\"playbookd.io/cordon\":null},\"labels\":{"
                              "\"playbookd.io/contained\":null}}");
    free(text);
    cJSON_Delete(meta);
    cJSON_Delete(n);
}

/* A cancel on a list at its bound (2,047 bytes) keeps every other entry: the last one too, or the change it
 * records would no longer expire (a taint left on the node for good). */
static void test_cancel_keeps_a_full_list(void **state)
{
    (void)state;
    char list[EXPIRY_LIST_MAX] = "", json[EXPIRY_LIST_MAX + 200];
    for (int i = 0; strlen(list) + 20 < EXPIRY_LIST_MAX; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "t%d:NoSchedule,", i);
    size_t pad = EXPIRY_LIST_MAX - 1 - strlen(list) - strlen(":NoExecute");
    memset(list + strlen(list), 'z', pad);
    strcat(list, ":NoExecute"); /* the last entry: zzz...:NoExecute */
    assert_int_equal(strlen(list), EXPIRY_LIST_MAX - 1);
    snprintf(json, sizeof(json), "{\"metadata\":{\"annotations\":{\"playbookd.io/taints\":\"%s\"}}}", list);
    cJSON *n = node(json);
    const struct expiry_mark absent = {.kind = EXPIRY_TAINT, .key = "other", .value = "NoSchedule"};
    const struct expiry_mark first = {.kind = EXPIRY_TAINT, .key = "t0", .value = "NoSchedule"};
    struct expiry_write w;
    struct action_result res = {0};
    assert_int_equal(expiry_plan(&w, n, 0, T0, &absent, 1, &res), 0);
    assert_string_equal(w.taints, list);
    assert_int_equal(expiry_plan(&w, n, 0, T0, &first, 1, &res), 1);
    assert_string_equal(w.taints, list + strlen("t0:NoSchedule,"));
    cJSON_Delete(n);
}

/* The undo patch of a node as JSON text, and what it undoes. */
static enum expiry_undo undo(const char *json, bool force, char **body, char *what, size_t size)
{
    cJSON *n = node(json);
    enum expiry_undo u = expiry_undo_patch(n, T0, force, body, what, size);
    cJSON_Delete(n);
    return u;
}

#define MARKED_NODE                                                                                                    \
    "{\"metadata\":{\"resourceVersion\":\"9\",\"labels\":{\"playbookd.io/contained\":\"true\",\"a\":\"1\",\"b\":"      \
    "\"changed\"},\"annotations\":{\"playbookd.io/expires-at\":\"%s\",\"playbookd.io/taints\":"                        \
    "\"falco/alert:NoSchedule,gone:NoExecute\",\"playbookd.io/labels\":\"a=1,b=2\",\"playbookd.io/cordoned-by\":"      \
    "\"playbookd\"%s}},\"spec\":{\"unschedulable\":true,\"taints\":[{\"key\":\"falco/alert\",\"effect\":"              \
    "\"NoExecute\"},{\"key\":\"falco/alert\",\"effect\":\"NoSchedule\"}]}}"

static void test_undo_only_what_is_recorded(void **state)
{
    (void)state;
    char json[2048], what[256], *body;
    snprintf(json, sizeof(json), MARKED_NODE, "2026-11-23T03:00:00Z", "");
    assert_int_equal(undo(json, false, &body, what, sizeof(what)), EXPIRY_PATCH);
    assert_string_equal(what, "taint falco/alert:NoSchedule, label a=1"); /* b changed since; cordon not expiring */
    assert_string_equal(body, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"9\"},"
                              "{\"op\":\"remove\",\"path\":\"/spec/taints/1\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/labels/a\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1expires-at\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1taints\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1labels\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/labels/playbookd.io~1contained\"}]");
    free(body);
    snprintf(json, sizeof(json), MARKED_NODE, "2026-11-23T03:00:00Z", ",\"playbookd.io/cordon\":\"expires\"");
    assert_int_equal(undo(json, false, &body, what, sizeof(what)), EXPIRY_PATCH);
    assert_string_equal(what, "taint falco/alert:NoSchedule, label a=1, cordon");
    assert_non_null(strstr(body, "{\"op\":\"remove\",\"path\":\"/spec/unschedulable\"},{\"op\":\"remove\",\"path\":"
                                 "\"/metadata/annotations/playbookd.io~1cordoned-by\"}"));
    free(body);
}

/* A label recorded twice is removed once: the API server refuses a patch that removes a path twice, and the
 * marks would never expire (found by fuzz_expiry). */
static void test_undo_label_recorded_twice(void **state)
{
    (void)state;
    char what[256], *body;
    assert_int_equal(
        undo("{\"metadata\":{\"resourceVersion\":\"1\",\"labels\":{\"a\":\"b\"},\"annotations\":{"
             "\"playbookd.io/expires-at\":\"2020-01-01T00:00:00Z\",\"playbookd.io/labels\":\"a=b,a=c,a=b\"}}}",
             false, &body, what, sizeof(what)),
        EXPIRY_PATCH);
    assert_string_equal(what, "label a=b");
    assert_string_equal(body, "[{\"op\":\"test\",\"path\":\"/metadata/resourceVersion\",\"value\":\"1\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/labels/a\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1expires-at\"},"
                              "{\"op\":\"remove\",\"path\":\"/metadata/annotations/playbookd.io~1labels\"}]");
    free(body);
}

static void test_undo_waits_for_expiry_unless_forced(void **state)
{
    (void)state;
    char json[2048], what[256], *body;
    snprintf(json, sizeof(json), MARKED_NODE, "2026-11-23T03:00:01Z", "");
    assert_int_equal(undo(json, false, &body, what, sizeof(what)), EXPIRY_NOT_YET);
    assert_null(body);
    assert_int_equal(undo(json, true, &body, what, sizeof(what)), EXPIRY_PATCH); /* --release: the cordon too */
    assert_string_equal(what, "taint falco/alert:NoSchedule, label a=1, cordon");
    free(body);
    snprintf(json, sizeof(json), MARKED_NODE, "soon", "");
    assert_int_equal(undo(json, false, &body, what, sizeof(what)), EXPIRY_INVALID);
    assert_int_equal(undo("{\"metadata\":{\"resourceVersion\":\"1\"}}", true, &body, what, sizeof(what)),
                     EXPIRY_NOTHING);
    assert_int_equal(undo("{\"metadata\":{\"resourceVersion\":\"1\",\"annotations\":{\"playbookd.io/cordoned-by\":"
                          "\"playbookd\"}},\"spec\":{\"unschedulable\":true}}",
                          false, &body, what, sizeof(what)),
                     EXPIRY_NOTHING); /* a cordon without expire_after never expires */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_plan_marks_only_playbookds_own),
        cmocka_unit_test(test_plan_keeps_marks_and_the_later_expiry),
        cmocka_unit_test(test_plan_bounds_its_lists),
        cmocka_unit_test(test_plan_without_expiry_cancels_the_same_change),
        cmocka_unit_test(test_cancel_keeps_a_full_list),
        cmocka_unit_test(test_undo_only_what_is_recorded),
        cmocka_unit_test(test_undo_waits_for_expiry_unless_forced),
        cmocka_unit_test(test_undo_label_recorded_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
