/*
 * fuzz_selector.c: libFuzzer target for selector.c on hostile JSON as a compromised or odd API server could
 * answer it. The input is two JSON values one after the other: a label selector (also read as a
 * NetworkPolicy, and put in one as spec.podSelector) and a label map. Checks (besides ASan's: nothing is
 * read past the input or a value): selector_matches agrees with a reference written the obvious way from
 * the Kubernetes rules (valid selectors only: for an invalid one, only that the answer is in range);
 * selector_policy_selects is selector_matches of spec.podSelector (absent or null: every pod);
 * selector_policy_allows names only directions that have rules.
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/selector.h"

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static bool is_value(const cJSON *labels, const char *key, const char *value)
{
    const cJSON *v = get(labels, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, value) == 0;
}

static bool in_values(const cJSON *labels, const char *key, const cJSON *values)
{
    const cJSON *v;
    cJSON_ArrayForEach (v, values)
        if (is_value(labels, key, v->valuestring))
            return true;
    return false;
}

/* One requirement, for a valid selector: -1 invalid, else whether it holds. */
static int ref_requirement(const cJSON *e, const cJSON *labels)
{
    const cJSON *key = get(e, "key"), *op = get(e, "operator"), *values = get(e, "values"), *v;
    const cJSON *list = cJSON_IsArray(values) ? values : NULL;
    int n = 0;
    if (!cJSON_IsString(key) || !cJSON_IsString(op))
        return -1;
    if (values != NULL && !cJSON_IsNull(values) && !cJSON_IsArray(values))
        return -1;
    cJSON_ArrayForEach (v, list) {
        if (!cJSON_IsString(v) && (!strcmp(op->valuestring, "In") || !strcmp(op->valuestring, "NotIn")))
            return -1;
        n++;
    }
    if (!strcmp(op->valuestring, "In"))
        return n == 0 ? -1 : in_values(labels, key->valuestring, values);
    if (!strcmp(op->valuestring, "NotIn"))
        return n == 0 ? -1 : !in_values(labels, key->valuestring, values);
    if (!strcmp(op->valuestring, "Exists"))
        return n != 0 ? -1 : get(labels, key->valuestring) != NULL;
    if (!strcmp(op->valuestring, "DoesNotExist"))
        return n != 0 ? -1 : get(labels, key->valuestring) == NULL;
    return -1;
}

/* The reference: -1 invalid, 0 no, 1 yes. */
static int ref_matches(const cJSON *sel, const cJSON *labels)
{
    const cJSON *ml, *exprs, *p;
    int result = 1;
    if (sel == NULL || cJSON_IsNull(sel))
        return 0;
    if (!cJSON_IsObject(sel))
        return -1;
    ml = get(sel, "matchLabels");
    exprs = get(sel, "matchExpressions");
    const cJSON *pairs = cJSON_IsObject(ml) ? ml : NULL, *list = cJSON_IsArray(exprs) ? exprs : NULL;
    if ((ml != NULL && !cJSON_IsNull(ml) && !cJSON_IsObject(ml)) ||
        (exprs != NULL && !cJSON_IsNull(exprs) && !cJSON_IsArray(exprs)))
        return -1;
    cJSON_ArrayForEach (p, pairs) {
        if (!cJSON_IsString(p))
            return -1;
        if (!is_value(labels, p->string, p->valuestring))
            result = 0;
    }
    cJSON_ArrayForEach (p, list) {
        int r = cJSON_IsObject(p) ? ref_requirement(p, labels) : -1;
        if (r < 0)
            return -1;
        if (r == 0)
            result = 0;
    }
    return result;
}

static void check_policy(const cJSON *sel, const cJSON *labels, enum selector_match m)
{
    cJSON *policy = cJSON_CreateObject(), *spec = cJSON_AddObjectToObject(policy, "spec");
    if (spec == NULL || (sel != NULL && !cJSON_AddItemReferenceToObject(spec, "podSelector", (cJSON *)sel)))
        goto out;
    enum selector_match p = selector_policy_selects(policy, labels);
    if (sel == NULL || cJSON_IsNull(sel) ? p != SELECTOR_YES : p != m)
        abort();
out:
    cJSON_Delete(policy);
}

static void check_allows(const cJSON *policy)
{
    unsigned allows = selector_policy_allows(policy);
    const cJSON *spec = get(policy, "spec");
    if (allows & ~(SELECTOR_INGRESS | SELECTOR_EGRESS))
        abort();
    if ((allows & SELECTOR_INGRESS) && cJSON_GetArraySize(get(spec, "ingress")) == 0)
        abort();
    if ((allows & SELECTOR_EGRESS) && cJSON_GetArraySize(get(spec, "egress")) == 0)
        abort();
    selector_policy_selects(policy, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *end = NULL;
    cJSON *sel = cJSON_ParseWithLengthOpts((const char *)data, size, &end, false);
    cJSON *labels = NULL;
    if (sel != NULL && end != NULL && (size_t)(end - (const char *)data) < size) {
        size_t used = (size_t)(end - (const char *)data);
        labels = cJSON_ParseWithLength((const char *)data + used, size - used);
    }
    enum selector_match m = selector_matches(sel, labels);
    int want = ref_matches(sel, labels);
    if (m != SELECTOR_NO && m != SELECTOR_YES && m != SELECTOR_INVALID)
        abort();
    if ((want < 0) != (m == SELECTOR_INVALID) || (want >= 0 && (m == SELECTOR_YES) != (want == 1)))
        abort();
    check_policy(sel, labels, m);
    check_allows(sel);
    cJSON_Delete(labels);
    cJSON_Delete(sel);
    return 0;
}
