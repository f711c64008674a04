/*
 * isolate_pod.c: the `isolate-pod` playbook. Cuts the pod off the network: ensures a NetworkPolicy in
 * its namespace that selects a label, with policyTypes Ingress and Egress and no rules (all traffic
 * denied; an existing one is checked to do the same), then adds that label to the pod with a merge patch that carries
 * the pod's uid, so a replacement pod with the same name is not labelled.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

struct isolate_pod {
    char *policy_name;
    char *label; /* "key=value" as configured */
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
        o = kube_failure(&resp, "get policy", res);
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
        o = kube_failure(&resp, "create policy", res);
    kube_response_free(&resp);
    return o;
}

static char *label_patch(const struct isolate_pod *p, const struct target *t)
{
    cJSON *patch = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(patch, "metadata");
    if (t->uid != NULL)
        cJSON_AddStringToObject(meta, "uid", t->uid); /* the server refuses to change a uid */
    cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "labels"), p->label_key, p->label_value);
    char *json = cJSON_PrintUnformatted(patch);
    cJSON_Delete(patch);
    return json;
}

static enum outcome label_pod(struct playbook *pb, const struct target *t, struct action_result *res)
{
    char path[512], *body = label_patch(pb->ctx, t);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
    struct kube_response resp;
    kube_send(pb->env->kube, "PATCH", path, "application/merge-patch+json", body, pb->dry_run, &resp);
    enum outcome o;
    if (resp.status == 200)
        o = playbook_changed(pb);
    else if (resp.status == 404)
        o = action_skip(res, "the pod is gone");
    else if (resp.status == 409 || (resp.status == 422 && t->uid != NULL && strstr(resp.message, "uid")))
        o = action_skip(res, "the pod was replaced: its uid is not the alert's");
    else
        o = kube_failure(&resp, "label pod", res);
    kube_response_free(&resp);
    return o;
}

static enum outcome isolate_pod_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    struct target t;
    enum outcome o = target_pod(a, pb->env, &t, res);
    if (o == OUTCOME_OK)
        o = ensure_policy(pb, &t, res);
    if (o == OUTCOME_OK)
        o = label_pod(pb, &t, res);
    if (o == OUTCOME_OK || o == OUTCOME_DRY_RUN)
        playbook_record_event(pb, a, "Pod", t.ns, t.pod, t.uid, "IsolatePod");
    return o;
}

const struct playbook_type playbook_isolate_pod = {
    .name = "isolate-pod",
    .needs_kube = true,
    .find_target = target_pod,
    .params = isolate_pod_params,
    .ctx_size = sizeof(struct isolate_pod),
    .init = isolate_pod_init,
    .run = isolate_pod_run,
};
