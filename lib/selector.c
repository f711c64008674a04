/*
 * selector.c: label selectors and NetworkPolicies, evaluated as Kubernetes does (see selector.h). The
 * input comes from the API server and is treated as untrusted: wrong types make a selector invalid, never
 * a crash, and the caller decides what an invalid selector means (isolate-pod counts it as selecting).
 */
#include "playbookd/selector.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "playbookd/kube.h"

static const cJSON *label(const cJSON *labels, const char *key)
{
    return cJSON_IsObject(labels) ? cJSON_GetObjectItemCaseSensitive(labels, key) : NULL;
}

static bool label_is(const cJSON *labels, const char *key, const char *value)
{
    const cJSON *have = label(labels, key);
    return cJSON_IsString(have) && strcmp(have->valuestring, value) == 0;
}

static enum selector_match match_labels(const cJSON *match, const cJSON *labels)
{
    const cJSON *pair;
    enum selector_match m = SELECTOR_YES;
    if (match == NULL || cJSON_IsNull(match))
        return SELECTOR_YES;
    if (!cJSON_IsObject(match))
        return SELECTOR_INVALID;
    cJSON_ArrayForEach (pair, match) {
        if (!cJSON_IsString(pair))
            return SELECTOR_INVALID; /* even after a mismatch: an invalid part is never hidden */
        if (!label_is(labels, pair->string, pair->valuestring))
            m = SELECTOR_NO;
    }
    return m;
}

/* True if the label's value is one of values (all strings, checked by the caller). */
static bool value_in(const cJSON *have, const cJSON *values)
{
    const cJSON *v;
    cJSON_ArrayForEach (v, values)
        if (cJSON_IsString(have) && strcmp(have->valuestring, v->valuestring) == 0)
            return true;
    return false;
}

static bool all_strings(const cJSON *values)
{
    const cJSON *v;
    cJSON_ArrayForEach (v, values)
        if (!cJSON_IsString(v))
            return false;
    return true;
}

/* One matchExpressions requirement, with the checks of LabelSelectorAsSelector / NewRequirement. */
static enum selector_match match_expression(const cJSON *e, const cJSON *labels)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(e, "key");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(e, "operator");
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
    if (!cJSON_IsString(key) || !cJSON_IsString(op) ||
        !(values == NULL || cJSON_IsNull(values) || cJSON_IsArray(values)))
        return SELECTOR_INVALID;
    int n = cJSON_IsArray(values) ? cJSON_GetArraySize(values) : 0;
    const cJSON *have = label(labels, key->valuestring);
    bool set = strcmp(op->valuestring, "In") == 0 || strcmp(op->valuestring, "NotIn") == 0;
    bool exists = strcmp(op->valuestring, "Exists") == 0 || strcmp(op->valuestring, "DoesNotExist") == 0;
    if ((set && (n == 0 || !all_strings(values))) || (exists && n != 0) || (!set && !exists))
        return SELECTOR_INVALID;
    bool holds;
    if (strcmp(op->valuestring, "In") == 0)
        holds = value_in(have, values);
    else if (strcmp(op->valuestring, "NotIn") == 0)
        holds = !value_in(have, values); /* an absent label is not in any set */
    else if (strcmp(op->valuestring, "Exists") == 0)
        holds = have != NULL;
    else
        holds = have == NULL;
    return holds ? SELECTOR_YES : SELECTOR_NO;
}

enum selector_match selector_matches(const cJSON *selector, const cJSON *labels)
{
    if (selector == NULL || cJSON_IsNull(selector))
        return SELECTOR_NO; /* a nil selector selects nothing */
    if (!cJSON_IsObject(selector))
        return SELECTOR_INVALID;
    const cJSON *exprs = cJSON_GetObjectItemCaseSensitive(selector, "matchExpressions"), *e;
    if (exprs != NULL && !cJSON_IsNull(exprs) && !cJSON_IsArray(exprs))
        return SELECTOR_INVALID;
    const cJSON *list = cJSON_IsArray(exprs) ? exprs : NULL;
    enum selector_match m = match_labels(cJSON_GetObjectItemCaseSensitive(selector, "matchLabels"), labels);
    cJSON_ArrayForEach (e, list) {
        enum selector_match one = cJSON_IsObject(e) ? match_expression(e, labels) : SELECTOR_INVALID;
        if (one == SELECTOR_INVALID || m == SELECTOR_INVALID)
            return SELECTOR_INVALID; /* evaluated whole: an invalid part is never hidden by a mismatch */
        if (one == SELECTOR_NO)
            m = SELECTOR_NO;
    }
    return m;
}

/* A query being written: what does not fit sets too_long and is dropped. */
struct rendering {
    char *out;
    size_t size, n;
    bool too_long, bad;
};

static void put(struct rendering *r, const char *text)
{
    size_t len = strlen(text);
    if (r->n + len + 1 > r->size) {
        r->too_long = true;
        return;
    }
    memcpy(r->out + r->n, text, len + 1);
    r->n += len;
}

/* One requirement's key, after a comma when one came before; a key that is no label key spoils the whole. */
static void put_key(struct rendering *r, const char *prefix, const char *key)
{
    r->bad |= !kube_qualified_name(key);
    put(r, r->n > 0 ? "," : "");
    put(r, prefix);
    put(r, key);
}

static void put_value(struct rendering *r, const char *value)
{
    r->bad |= !kube_label_value(value);
    put(r, value);
}

/* "key in (a,b)" or "key notin (a,b)" (the values already checked to be strings). */
static void put_set(struct rendering *r, const char *key, const char *op, const cJSON *values)
{
    const cJSON *v;
    put_key(r, "", key);
    put(r, op);
    cJSON_ArrayForEach (v, values) {
        put(r, v == values->child ? "" : ",");
        put_value(r, v->valuestring);
    }
    put(r, ")");
}

static void put_expression(struct rendering *r, const cJSON *e)
{
    const char *key = cJSON_GetObjectItemCaseSensitive(e, "key")->valuestring;
    const char *op = cJSON_GetObjectItemCaseSensitive(e, "operator")->valuestring;
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(e, "values");
    if (strcmp(op, "In") == 0)
        put_set(r, key, " in (", values);
    else if (strcmp(op, "NotIn") == 0)
        put_set(r, key, " notin (", values);
    else
        put_key(r, strcmp(op, "Exists") == 0 ? "" : "!", key);
}

enum selector_render selector_render(const cJSON *selector, char *out, size_t size)
{
    struct rendering r = {.out = out, .size = size};
    const cJSON *pair, *e;
    if (size == 0 || selector == NULL || cJSON_IsNull(selector) || selector_matches(selector, NULL) == SELECTOR_INVALID)
        return SELECTOR_UNRENDERABLE; /* checked whole: every expression, and matchLabels an object */
    out[0] = 0;
    cJSON_ArrayForEach (pair, cJSON_GetObjectItemCaseSensitive(selector, "matchLabels")) {
        if (!cJSON_IsString(pair))
            return SELECTOR_UNRENDERABLE;
        put_key(&r, "", pair->string);
        put(&r, "=");
        put_value(&r, pair->valuestring);
    }
    cJSON_ArrayForEach (e, cJSON_GetObjectItemCaseSensitive(selector, "matchExpressions"))
        put_expression(&r, e);
    if (r.bad)
        return SELECTOR_UNRENDERABLE;
    return r.too_long ? SELECTOR_TOO_LONG : SELECTOR_RENDERED;
}

enum selector_match selector_policy_selects(const cJSON *policy, const cJSON *labels)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(policy, "spec");
    const cJSON *selector = cJSON_GetObjectItemCaseSensitive(spec, "podSelector");
    if (!cJSON_IsObject(spec))
        return SELECTOR_INVALID;
    if (selector == NULL || cJSON_IsNull(selector))
        return SELECTOR_YES; /* the empty selector */
    return selector_matches(selector, labels);
}

static bool has_rules(const cJSON *spec, const char *direction)
{
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(spec, direction);
    return cJSON_IsArray(rules) && cJSON_GetArraySize(rules) > 0;
}

unsigned selector_policy_allows(const cJSON *policy)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(policy, "spec");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(spec, "policyTypes"), *t;
    const cJSON *list = cJSON_IsArray(types) ? types : NULL;
    unsigned governs = 0, allows = 0;
    cJSON_ArrayForEach (t, list) {
        if (cJSON_IsString(t) && strcmp(t->valuestring, "Ingress") == 0)
            governs |= SELECTOR_INGRESS;
        else if (cJSON_IsString(t) && strcmp(t->valuestring, "Egress") == 0)
            governs |= SELECTOR_EGRESS;
    }
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) == 0) /* SetDefaults_NetworkPolicy */
        governs = SELECTOR_INGRESS | (has_rules(spec, "egress") ? SELECTOR_EGRESS : 0);
    if ((governs & SELECTOR_INGRESS) && has_rules(spec, "ingress"))
        allows |= SELECTOR_INGRESS;
    if ((governs & SELECTOR_EGRESS) && has_rules(spec, "egress"))
        allows |= SELECTOR_EGRESS;
    return allows;
}
