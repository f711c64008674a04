/*
 * isolate_pod.c: the `isolate-pod` playbook. Cuts the pod off the network: ensures a NetworkPolicy in
 * its namespace that selects a label, with policyTypes Ingress and Egress and no rules (all traffic
 * denied; an existing one is checked to do the same), then adds that label to the pod with a merge patch
 * that carries the pod's uid, so a replacement pod with the same name is not labelled.
 *
 * NetworkPolicies are additive: a deny-all policy takes nothing away from another policy that selects the
 * same pod. So the playbook then lists the namespace's policies and evaluates their pod selectors against
 * the labels the pod has now (selector.c); if another one selects it and allows traffic, the pod is not
 * isolated and the outcome says so, unless `detach: true`: then every other label is removed (one JSON
 * patch guarded by the pod's resourceVersion), which takes the pod out of its ReplicaSet, its Services and
 * those policies, and the check runs again on the labels the API server answered with.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/labels.h"
#include "playbookd/playbook.h"
#include "playbookd/selector.h"
#include "playbookd/target.h"

/* Bounds on what the check reads: past them isolation cannot be verified, and the action fails saying so.
 * The list's answer is also bounded by HTTP_MAX_RESPONSE. */
#define ISOLATE_POLICIES_MAX 500 /* NetworkPolicies of the namespace (one page of a list) */
#define ISOLATE_LABELS_MAX 64    /* labels on the pod */
#define DETACH_KEYS_MAX 100      /* the removed keys, listed in the outcome up to this length, else counted */

struct isolate_pod {
    char *policy_name;
    char *label; /* "key=value" as configured */
    bool detach; /* remove the pod's other labels when another policy lets traffic through */
    char label_key[320], label_value[64];
};

static const struct param_spec isolate_pod_params[] = {
    {.name = "policy_name",
     .type = PARAM_STRING,
     .def = "playbookd-isolate",
     .offset = offsetof(struct isolate_pod, policy_name)},
    {.name = "label",
     .type = PARAM_STRING,
     .def = "playbookd.io/isolated=true",
     .offset = offsetof(struct isolate_pod, label)},
    {.name = "detach", .type = PARAM_BOOL, .def = "false", .offset = offsetof(struct isolate_pod, detach)},
    {0},
};

static int split_label(struct isolate_pod *p)
{
    const char *eq = strchr(p->label, '=');
    size_t key_len = eq ? (size_t)(eq - p->label) : 0;
    if (eq == NULL || key_len >= sizeof(p->label_key) || strlen(eq + 1) >= sizeof(p->label_value))
        return -1;
    memcpy(p->label_key, p->label, key_len);
    p->label_key[key_len] = 0;
    snprintf(p->label_value, sizeof(p->label_value), "%s", eq + 1);
    return kube_qualified_name(p->label_key) && kube_label_value(p->label_value) ? 0 : -1;
}

static int isolate_pod_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct isolate_pod *p = pb->ctx;
    if (p->policy_name == NULL || !kube_name_subdomain(p->policy_name))
        return config_node_error(err, config_node_get(params, "policy_name"), "not a valid object name");
    if (p->label == NULL || split_label(p) != 0)
        return config_node_error(err, config_node_get(params, "label"),
                                 "expected key=value with a valid label key and value");
    return 0;
}

static char *policy_body(const struct isolate_pod *p, const char *ns)
{
    cJSON *np = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(np, "metadata");
    cJSON *spec = cJSON_AddObjectToObject(np, "spec");
    cJSON *match = cJSON_AddObjectToObject(cJSON_AddObjectToObject(spec, "podSelector"), "matchLabels");
    cJSON *types = cJSON_AddArrayToObject(spec, "policyTypes");
    cJSON_AddStringToObject(np, "apiVersion", "networking.k8s.io/v1");
    cJSON_AddStringToObject(np, "kind", "NetworkPolicy");
    cJSON_AddStringToObject(meta, "name", p->policy_name);
    cJSON_AddStringToObject(meta, "namespace", ns);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), "app.kubernetes.io/managed-by", "playbookd");
    cJSON_AddStringToObject(match, p->label_key, p->label_value);
    cJSON_AddItemToArray(types, cJSON_CreateString("Ingress"));
    cJSON_AddItemToArray(types, cJSON_CreateString("Egress"));
    char *json = cJSON_PrintUnformatted(np);
    cJSON_Delete(np);
    return json;
}

/* True if the policy selects the label and denies all: both policy types, no rules. */
static bool policy_isolates(const struct isolate_pod *p, const cJSON *policy)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(policy, "spec");
    const cJSON *selector = cJSON_GetObjectItemCaseSensitive(spec, "podSelector");
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(selector, "matchLabels");
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(match, p->label_key);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(spec, "policyTypes"), *t;
    bool ingress = false, egress = false;
    cJSON_ArrayForEach (t, types) {
        ingress = ingress || (cJSON_IsString(t) && strcmp(t->valuestring, "Ingress") == 0);
        egress = egress || (cJSON_IsString(t) && strcmp(t->valuestring, "Egress") == 0);
    }
    return cJSON_IsString(value) && strcmp(value->valuestring, p->label_value) == 0 && cJSON_GetArraySize(match) == 1 &&
           cJSON_GetObjectItemCaseSensitive(selector, "matchExpressions") == NULL && ingress && egress &&
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(spec, "ingress")) == 0 &&
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(spec, "egress")) == 0;
}

/* A policy of that name already exists: it will do only if it isolates as ours would. */
static enum outcome check_existing_policy(struct playbook *pb, const char *path, struct action_result *res)
{
    const struct isolate_pod *p = pb->ctx;
    char url[640];
    snprintf(url, sizeof(url), "%s/%s", path, p->policy_name);
    struct kube_response resp;
    kube_send(pb->env->kube, "GET", url, NULL, NULL, false, &resp);
    enum outcome o = OUTCOME_OK;
    if (resp.status != 200)
        o = playbook_kube_failure(&resp, "get policy", res);
    else if (!policy_isolates(p, kube_response_json(&resp)))
        o = action_fail(res, false, "NetworkPolicy %s exists but does not deny all traffic to pods labelled %s",
                        p->policy_name, p->label);
    kube_response_free(&resp);
    return o;
}

/* Creates the policy, or checks the one that exists (409). */
static enum outcome ensure_policy(struct playbook *pb, const struct target *t, struct action_result *res)
{
    char path[512], *body = policy_body(pb->ctx, t->ns);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies", t->ns);
    struct kube_response resp;
    kube_send(pb->env->kube, "POST", path, "application/json", body, pb->dry_run, &resp);
    enum outcome o = OUTCOME_OK;
    if (resp.status == 409)
        o = check_existing_policy(pb, path, res);
    else if (resp.status != 201)
        o = playbook_kube_failure(&resp, "create policy", res);
    kube_response_free(&resp);
    return o;
}

/* Adds the label (labels.c: a merge patch with the pod's uid); *pod is the pod as the API server answered (dry
 * run: as it would be), for the caller to free. */
static enum outcome label_pod(struct playbook *pb, const struct target *t, cJSON **pod, struct action_result *res)
{
    struct isolate_pod *p = pb->ctx;
    const struct label_change label = {.key = p->label_key, .value = p->label_value};
    return label_pod_patch(pb, t, &label, 1, pod, res);
}

static const cJSON *labels_of(const cJSON *pod)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "metadata"), "labels");
}

/* What the policies that let traffic reach or leave a pod with these labels come to. */
struct leak {
    unsigned directions; /* SELECTOR_INGRESS | SELECTOR_EGRESS, of the first such policy */
    int policies;        /* how many such policies */
    char name[254];      /* the first one's name, or "(invalid name)" */
};

/* Finds the policies that select the labels and allow traffic. A selector that cannot be evaluated counts
 * as selecting: the check errs on the side of "not isolated". */
static void find_leaks(const cJSON *items, const cJSON *labels, struct leak *leak)
{
    const cJSON *policy;
    memset(leak, 0, sizeof(*leak));
    cJSON_ArrayForEach (policy, items) {
        unsigned allows = selector_policy_allows(policy);
        if (allows == 0 || selector_policy_selects(policy, labels) == SELECTOR_NO)
            continue;
        if (leak->policies++ == 0) {
            const cJSON *name =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(policy, "metadata"), "name");
            bool valid = cJSON_IsString(name) && kube_name_subdomain(name->valuestring); /* safe to print */
            snprintf(leak->name, sizeof(leak->name), "%s", valid ? name->valuestring : "(invalid name)");
            leak->directions = allows;
        }
    }
}

/* "not isolated: NetworkPolicy "x" allows ingress (and 2 more policies)" plus what detach did, if anything. */
static enum outcome not_isolated(const struct leak *leak, const char *detached, struct action_result *res)
{
    const char *dirs = leak->directions == (SELECTOR_INGRESS | SELECTOR_EGRESS) ? "ingress and egress"
                       : leak->directions == SELECTOR_INGRESS                   ? "ingress"
                                                                                : "egress";
    char more[48] = "";
    if (leak->policies > 1)
        snprintf(more, sizeof(more), " (and %d more polic%s)", leak->policies - 1, leak->policies == 2 ? "y" : "ies");
    return action_fail(res, false, "not isolated: NetworkPolicy \"%s\" allows %s%s%s", leak->name, dirs, more,
                       detached);
}

/* The NetworkPolicies of the namespace, at most ISOLATE_POLICIES_MAX; *items points into resp. */
static enum outcome list_policies(struct playbook *pb, const struct target *t, struct kube_response *resp,
                                  const cJSON **items, struct action_result *res)
{
    char path[512];
    snprintf(path, sizeof(path), "/apis/networking.k8s.io/v1/namespaces/%s/networkpolicies?limit=%d", t->ns,
             ISOLATE_POLICIES_MAX);
    enum outcome o = playbook_kube_get(pb->env->kube, path, "list policies", resp, res);
    if (o != OUTCOME_OK)
        return o;
    const cJSON *more =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp->json, "metadata"), "continue");
    *items = cJSON_GetObjectItemCaseSensitive(resp->json, "items");
    if (!cJSON_IsArray(*items))
        return action_fail(res, true, "list policies: the answer has no items");
    if (cJSON_IsString(more) && more->valuestring[0] != 0)
        return action_fail(res, false, "isolation not verified: more than %d NetworkPolicies in namespace %s",
                           ISOLATE_POLICIES_MAX, t->ns);
    return OUTCOME_OK;
}

/* "app, tier" as far as it fits in keys; *cut when it did not. */
static void list_key(char *keys, size_t size, const char *key, bool *cut)
{
    size_t used = strlen(keys);
    int w = snprintf(keys + used, size - used, "%s%s", used ? ", " : "", key);
    if (w < 0 || (size_t)w >= size - used) {
        keys[used] = 0;
        *cut = true;
    }
}

/*
 * The JSON patch that removes every label but ours, guarded by the pod's resourceVersion, into *body (NULL
 * when there is nothing to remove); the keys it removes into keys (*cut: not all of them fitted) and *n.
 */
static enum outcome detach_patch(const struct isolate_pod *p, const cJSON *pod, char **body, char *keys, size_t size,
                                 bool *cut, size_t *n, struct action_result *res)
{
    const cJSON *version =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "metadata"), "resourceVersion");
    const cJSON *label;
    char path[32 + 2 * 320];
    if (!cJSON_IsString(version))
        return action_fail(res, false, "label pod: the answer has no metadata.resourceVersion");
    cJSON *ops = cJSON_CreateArray(), *test = cJSON_CreateObject();
    cJSON_AddItemToArray(ops, test);
    cJSON_AddStringToObject(test, "op", "test");
    cJSON_AddStringToObject(test, "path", "/metadata/resourceVersion");
    cJSON_AddStringToObject(test, "value", version->valuestring);
    *n = 0;
    cJSON_ArrayForEach (label, labels_of(pod)) {
        if (strcmp(label->string, p->label_key) == 0)
            continue;
        if (!kube_qualified_name(label->string) || strlen(label->string) >= 320) { /* the API server checks it */
            cJSON_Delete(ops);
            return action_fail(res, false, "not detached: the pod has a label key that is not valid");
        }
        cJSON *remove = cJSON_CreateObject();
        cJSON_AddItemToArray(ops, remove);
        cJSON_AddStringToObject(remove, "op", "remove");
        kube_json_pointer(path, sizeof(path), "/metadata/labels", label->string);
        cJSON_AddStringToObject(remove, "path", path);
        list_key(keys, size, label->string, cut);
        (*n)++;
    }
    *body = *n > 0 ? cJSON_PrintUnformatted(ops) : NULL;
    cJSON_Delete(ops);
    if (*n > 0 && *body == NULL)
        return action_fail(res, true, "out of memory");
    return OUTCOME_OK;
}

/* " (detached: removed labels app, tier)", or the count when the list is longer than DETACH_KEYS_MAX; dry
 * run: "would remove". */
static void detach_note(char *note, size_t size, bool dry_run, const char *keys, bool cut, size_t n)
{
    const char *did = dry_run ? "detach: would remove" : "detached: removed";
    if (cut)
        snprintf(note, size, " (%s %zu label%s)", did, n, n == 1 ? "" : "s");
    else
        snprintf(note, size, " (%s label%s %.*s)", did, n == 1 ? "" : "s", DETACH_KEYS_MAX, keys);
}

/* Sends the detach patch; *pod is the pod as answered, for the caller to free. */
static enum outcome send_detach(struct playbook *pb, const struct target *t, char *body, cJSON **pod,
                                struct action_result *res)
{
    char path[512];
    struct kube_response resp;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
    kube_send(pb->env->kube, "PATCH", path, "application/json-patch+json", body, pb->dry_run, &resp);
    enum outcome o = OUTCOME_OK;
    if (resp.status == 200 && kube_response_json(&resp) != NULL)
        *pod = resp.json, resp.json = NULL; /* taken */
    else if (resp.status == 200)
        o = action_fail(res, true, "detach pod: the answer is not JSON");
    else if (resp.status == 404)
        o = action_skip(res, "the pod is gone");
    else if (resp.status == 409 || (resp.status == 422 && kube_patch_test_failed(kube_response_json(&resp))))
        o = action_fail(res, true, "the pod changed while it was being detached (HTTP %ld)", resp.status);
    else
        o = playbook_kube_failure(&resp, "detach pod", res);
    kube_response_free(&resp);
    return o;
}

/* Removes the pod's other labels, then checks the labels it is left with against the same policies. */
static enum outcome detach_pod(struct playbook *pb, const struct target *t, const cJSON *pod, const cJSON *items,
                               const struct leak *leak, struct action_result *res)
{
    char keys[DETACH_KEYS_MAX + 1] = "", note[160];
    char *body = NULL;
    bool cut = false;
    size_t n = 0;
    cJSON *detached = NULL;
    enum outcome o = detach_patch(pb->ctx, pod, &body, keys, sizeof(keys), &cut, &n, res);
    if (o != OUTCOME_OK)
        return o;
    if (n == 0)
        return not_isolated(leak, " (detach: the pod has no other label to remove)", res);
    o = send_detach(pb, t, body, &detached, res);
    if (o == OUTCOME_OK) {
        struct leak after;
        detach_note(note, sizeof(note), pb->dry_run, keys, cut, n);
        find_leaks(items, labels_of(detached), &after);
        if (after.policies > 0)
            o = not_isolated(&after, note, res);
        else if (strlen(res->target) + strlen(note) < sizeof(res->target))
            strcat(res->target, note);
    }
    cJSON_Delete(detached);
    return o;
}

/* Lists the namespace's policies and checks the pod's labels against them (see the top of the file). */
static enum outcome verify_isolation(struct playbook *pb, const struct target *t, const cJSON *pod,
                                     struct action_result *res)
{
    const struct isolate_pod *p = pb->ctx;
    const cJSON *items = NULL;
    struct kube_response resp;
    struct leak leak;
    if (cJSON_GetArraySize(labels_of(pod)) > ISOLATE_LABELS_MAX)
        return action_fail(res, false, "isolation not verified: the pod has more than %d labels", ISOLATE_LABELS_MAX);
    enum outcome o = list_policies(pb, t, &resp, &items, res);
    if (o == OUTCOME_OK) {
        find_leaks(items, labels_of(pod), &leak);
        if (leak.policies > 0)
            o = p->detach ? detach_pod(pb, t, pod, items, &leak, res) : not_isolated(&leak, "", res);
    }
    kube_response_free(&resp);
    return o;
}

static enum outcome isolate_pod_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    struct target t;
    cJSON *pod = NULL;
    enum outcome o = target_pod(a, pb->env, &t, res);
    if (o == OUTCOME_OK)
        o = ensure_policy(pb, &t, res);
    if (o == OUTCOME_OK)
        o = label_pod(pb, &t, &pod, res);
    if (o == OUTCOME_OK)
        o = verify_isolation(pb, &t, pod, res);
    cJSON_Delete(pod);
    if (o != OUTCOME_OK)
        return o;
    playbook_record_event(pb, a, "Pod", t.ns, t.pod, t.uid, "IsolatePod");
    return playbook_changed(pb);
}

/* Create (or GET) its policy, list the namespace's policies, PATCH the pod: its label and, with detach, the
 * removal of the others, so detach needs no more than labelling does. */
static const struct rbac_rule isolate_pod_rbac[] = {
    {.group = "networking.k8s.io", .resource = "networkpolicies", .verb = "get"},
    {.group = "networking.k8s.io", .resource = "networkpolicies", .verb = "list"},
    {.group = "networking.k8s.io", .resource = "networkpolicies", .verb = "create"},
    {.group = "", .resource = "pods", .verb = "patch"},
    {0},
};

const struct playbook_type playbook_isolate_pod = {
    .name = "isolate-pod",
    .needs_kube = true,
    .expires = true,
    .rbac = isolate_pod_rbac,
    .find_target = target_pod,
    .params = isolate_pod_params,
    .ctx_size = sizeof(struct isolate_pod),
    .init = isolate_pod_init,
    .run = isolate_pod_run,
};
