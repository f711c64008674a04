/* test_selector.c: unit tests for label selectors (each operator, matchLabels, the empty and nil
 * selectors, invalid ones), their labelSelector query form, and for which NetworkPolicies select a pod and
 * allow traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "playbookd/selector.h"

#define POD_LABELS "{\"app\":\"web\",\"tier\":\"front\",\"example.com/team\":\"a\"}"

/* selector_matches on JSON text; "null" stands for a nil selector, NULL for a missing one. */
static enum selector_match match(const char *selector, const char *labels)
{
    cJSON *s = selector ? cJSON_Parse(selector) : NULL, *l = labels ? cJSON_Parse(labels) : NULL;
    if ((selector && s == NULL) || (labels && l == NULL))
        fail_msg("bad JSON in the test: %s / %s", selector, labels ? labels : "(none)");
    enum selector_match m = selector_matches(s, l);
    cJSON_Delete(s);
    cJSON_Delete(l);
    return m;
}

#define YES(sel) assert_int_equal(match(sel, POD_LABELS), SELECTOR_YES)
#define NO(sel) assert_int_equal(match(sel, POD_LABELS), SELECTOR_NO)
#define INVALID(sel) assert_int_equal(match(sel, POD_LABELS), SELECTOR_INVALID)

static void test_empty_and_nil(void **state)
{
    (void)state;
    YES("{}");
    assert_int_equal(match("{}", NULL), SELECTOR_YES);
    assert_int_equal(match("{}", "{}"), SELECTOR_YES);
    YES("{\"matchLabels\":{},\"matchExpressions\":[]}");
    YES("{\"matchLabels\":null,\"matchExpressions\":null}");
    NO("null");
    NO(NULL);
}

static void test_match_labels(void **state)
{
    (void)state;
    YES("{\"matchLabels\":{\"app\":\"web\"}}");
    YES("{\"matchLabels\":{\"app\":\"web\",\"tier\":\"front\"}}");
    YES("{\"matchLabels\":{\"example.com/team\":\"a\"}}");
    NO("{\"matchLabels\":{\"app\":\"web\",\"tier\":\"back\"}}"); /* every pair must hold */
    NO("{\"matchLabels\":{\"app\":\"Web\"}}");                   /* values are case-sensitive */
    NO("{\"matchLabels\":{\"App\":\"web\"}}");                   /* so are keys */
    NO("{\"matchLabels\":{\"missing\":\"\"}}");                  /* an empty value needs the label */
    assert_int_equal(match("{\"matchLabels\":{\"e\":\"\"}}", "{\"e\":\"\"}"), SELECTOR_YES);
    INVALID("{\"matchLabels\":{\"app\":1}}");
    INVALID("{\"matchLabels\":[\"app\"]}");
    INVALID("{\"matchLabels\":{\"app\":\"other\",\"tier\":1}}"); /* after a mismatch too (found by fuzz_selector) */
}

static void test_in_and_not_in(void **state)
{
    (void)state;
    YES("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[\"db\",\"web\"]}]}");
    NO("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[\"db\"]}]}");
    NO("{\"matchExpressions\":[{\"key\":\"missing\",\"operator\":\"In\",\"values\":[\"web\"]}]}");
    NO("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"NotIn\",\"values\":[\"db\",\"web\"]}]}");
    YES("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"NotIn\",\"values\":[\"db\"]}]}");
    YES("{\"matchExpressions\":[{\"key\":\"missing\",\"operator\":\"NotIn\",\"values\":[\"web\"]}]}"); /* absent */
    INVALID("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[]}]}");
    INVALID("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"NotIn\"}]}");
    INVALID("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":[1]}]}");
    INVALID("{\"matchExpressions\":[{\"key\":\"app\",\"operator\":\"in\",\"values\":[\"web\"]}]}"); /* exact names */
}

static void test_exists_and_does_not_exist(void **state)
{
    (void)state;
    YES("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}");
    YES("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\",\"values\":[]}]}");
    NO("{\"matchExpressions\":[{\"key\":\"missing\",\"operator\":\"Exists\"}]}");
    YES("{\"matchExpressions\":[{\"key\":\"missing\",\"operator\":\"DoesNotExist\"}]}");
    NO("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}");
    INVALID("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\",\"values\":[\"front\"]}]}");
    INVALID("{\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}");
    INVALID("{\"matchExpressions\":[{\"operator\":\"Exists\"}]}");
    INVALID("{\"matchExpressions\":[\"tier\"]}");
    INVALID("{\"matchExpressions\":{\"key\":\"tier\",\"operator\":\"Exists\"}}");
}

static void test_labels_and_expressions_together(void **state)
{
    (void)state;
    YES("{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"},"
        "{\"key\":\"x\",\"operator\":\"DoesNotExist\"}]}");
    NO("{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}");
    NO("{\"matchLabels\":{\"app\":\"db\"},\"matchExpressions\":[{\"key\":\"tier\",\"operator\":\"Exists\"}]}");
    /* an invalid requirement is reported even after one that does not hold */
    INVALID("{\"matchLabels\":{\"app\":\"db\"},\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Bad\"}]}");
}

static cJSON *parse(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s", json);
    return j;
}

static unsigned allows(const char *spec)
{
    char text[512];
    snprintf(text, sizeof(text), "{\"metadata\":{\"name\":\"p\"},\"spec\":%s}", spec);
    cJSON *policy = parse(text);
    unsigned a = selector_policy_allows(policy);
    cJSON_Delete(policy);
    return a;
}

static void test_policy_allows(void **state)
{
    (void)state;
    const unsigned in = SELECTOR_INGRESS, out = SELECTOR_EGRESS;
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Ingress\",\"Egress\"]}"), 0); /* deny all */
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Ingress\"]}"), 0);
    assert_int_equal(allows("{\"podSelector\":{},\"ingress\":[{}]}"), in); /* the allow-all */
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Ingress\"],\"ingress\":[{}]}"), in);
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Egress\"],\"egress\":[{\"to\":[]}]}"), out);
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Ingress\",\"Egress\"],\"ingress\":[{}],"
                            "\"egress\":[{}]}"),
                     in | out);
    /* rules for a direction the policy does not govern allow nothing */
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[\"Egress\"],\"ingress\":[{}]}"), 0);
    /* defaulting: no policyTypes is Ingress, plus Egress when there are egress rules */
    assert_int_equal(allows("{\"podSelector\":{},\"egress\":[{}]}"), out);
    assert_int_equal(allows("{\"podSelector\":{},\"policyTypes\":[],\"ingress\":[{}],\"egress\":[{}]}"), in | out);
    assert_int_equal(allows("{\"podSelector\":{},\"egress\":[]}"), 0);
    /* a rule with a peer allows that peer: it counts */
    assert_int_equal(allows("{\"podSelector\":{},\"ingress\":[{\"from\":[{\"podSelector\":{\"matchLabels\":"
                            "{\"app\":\"nobody\"}}}]}]}"),
                     in);
    assert_int_equal(allows("{\"podSelector\":{},\"ingress\":{}}"), 0); /* not a list: no rule */
}

static enum selector_match policy_selects(const char *policy, const char *labels)
{
    cJSON *p = parse(policy), *l = parse(labels);
    enum selector_match m = selector_policy_selects(p, l);
    cJSON_Delete(p);
    cJSON_Delete(l);
    return m;
}

static void test_policy_selects(void **state)
{
    (void)state;
    assert_int_equal(policy_selects("{\"spec\":{\"podSelector\":{}}}", POD_LABELS), SELECTOR_YES);
    assert_int_equal(policy_selects("{\"spec\":{}}", POD_LABELS), SELECTOR_YES); /* absent: empty */
    assert_int_equal(policy_selects("{\"spec\":{\"podSelector\":null}}", "{}"), SELECTOR_YES);
    assert_int_equal(policy_selects("{\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"web\"}}}}", POD_LABELS),
                     SELECTOR_YES);
    assert_int_equal(policy_selects("{\"spec\":{\"podSelector\":{\"matchLabels\":{\"app\":\"db\"}}}}", POD_LABELS),
                     SELECTOR_NO);
    assert_int_equal(policy_selects("{\"metadata\":{}}", POD_LABELS), SELECTOR_INVALID);
    assert_int_equal(policy_selects("{\"spec\":{\"podSelector\":\"app=web\"}}", POD_LABELS), SELECTOR_INVALID);
}

/* selector_render on JSON text into a buffer of size bytes; the text rendered into out. */
static enum selector_render render(const char *selector, char *out, size_t size)
{
    cJSON *s = cJSON_Parse(selector);
    if (s == NULL && strcmp(selector, "null") != 0)
        fail_msg("bad JSON in the test: %s", selector);
    enum selector_render r = selector_render(s, out, size);
    cJSON_Delete(s);
    return r;
}

#define RENDERS(sel, text)                                                                                             \
    do {                                                                                                               \
        char out[256];                                                                                                 \
        assert_int_equal(render(sel, out, sizeof(out)), SELECTOR_RENDERED);                                            \
        assert_string_equal(out, text);                                                                                \
    } while (0)
#define UNRENDERABLE(sel)                                                                                              \
    do {                                                                                                               \
        char out[256];                                                                                                 \
        assert_int_equal(render(sel, out, sizeof(out)), SELECTOR_UNRENDERABLE);                                        \
    } while (0)

static void test_render(void **state)
{
    (void)state;
    RENDERS("{}", "");
    RENDERS("{\"matchLabels\":{\"app\":\"cart\"}}", "app=cart");
    RENDERS("{\"matchLabels\":{\"app\":\"cart\",\"example.com/tier\":\"\"}}", "app=cart,example.com/tier=");
    RENDERS("{\"matchLabels\":{\"app\":\"cart\"},\"matchExpressions\":["
            "{\"key\":\"track\",\"operator\":\"In\",\"values\":[\"a\",\"b\"]},"
            "{\"key\":\"env\",\"operator\":\"NotIn\",\"values\":[\"dev\"]},"
            "{\"key\":\"release\",\"operator\":\"Exists\"},"
            "{\"key\":\"legacy\",\"operator\":\"DoesNotExist\",\"values\":[]}]}",
            "app=cart,track in (a,b),env notin (dev),release,!legacy");
    RENDERS("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"}]}", "a");
}

static void test_render_refuses_what_could_change_the_query(void **state)
{
    (void)state;
    UNRENDERABLE("null");
    UNRENDERABLE("[]");
    UNRENDERABLE("{\"matchLabels\":{\"app\":\"cart,evil\"}}"); /* a comma would add a requirement */
    UNRENDERABLE("{\"matchLabels\":{\"app\":\"a b\"}}");
    UNRENDERABLE("{\"matchLabels\":{\"app!\":\"cart\"}}");
    UNRENDERABLE("{\"matchLabels\":{\"\":\"cart\"}}");
    UNRENDERABLE("{\"matchLabels\":{\"app\":1}}");
    UNRENDERABLE("{\"matchLabels\":{\"app\":\"x\",\"b\":2}}"); /* checked whole, not up to a mismatch */
    UNRENDERABLE("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\",\"values\":[\"a)\"]}]}");
    UNRENDERABLE("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"In\",\"values\":[]}]}");
    UNRENDERABLE("{\"matchExpressions\":[{\"key\":\"t\",\"operator\":\"Gt\",\"values\":[\"1\"]}]}");
    UNRENDERABLE("{\"matchExpressions\":[{\"key\":\"t t\",\"operator\":\"Exists\"}]}");
}

static void test_render_too_long(void **state)
{
    (void)state;
    char out[9];
    assert_int_equal(render("{\"matchLabels\":{\"app\":\"cart\"}}", out, sizeof(out)), SELECTOR_RENDERED);
    assert_int_equal(render("{\"matchLabels\":{\"app\":\"carts\"}}", out, sizeof(out)), SELECTOR_TOO_LONG);
    assert_int_equal(render("{\"matchLabels\":{\"app\":\"a b c d e\"}}", out, sizeof(out)), SELECTOR_UNRENDERABLE);
    assert_int_equal(render("{}", out, 0), SELECTOR_UNRENDERABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_nil),
        cmocka_unit_test(test_match_labels),
        cmocka_unit_test(test_in_and_not_in),
        cmocka_unit_test(test_exists_and_does_not_exist),
        cmocka_unit_test(test_labels_and_expressions_together),
        cmocka_unit_test(test_policy_allows),
        cmocka_unit_test(test_policy_selects),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_refuses_what_could_change_the_query),
        cmocka_unit_test(test_render_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
