/*
 * target.c: from an alert to the pod or node to act on, with every name checked before use; and what every
 * node playbook does alike: find the node, read it (protected nodes skipped) and patch it.
 */
#include "playbookd/target.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "playbookd/kube.h"

/* A string output field, or NULL: names are never numbers, booleans or null. */
static const char *string_field(const struct alert *a, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a->fields, key);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* True for an event on the host itself (container.id "host", or a syscall alert without pod fields). */
static bool target_is_host_event(const struct alert *a)
{
    const char *container = string_field(a, "container.id");
    if (container != NULL && strcmp(container, "host") == 0)
        return true;
    bool syscall = a->source[0] == 0 || strcmp(a->source, "syscall") == 0;
    return syscall && string_field(a, "k8s.pod.name") == NULL && string_field(a, "k8s.ns.name") == NULL;
}

static bool uid_ok(const char *uid)
{
    size_t n = strlen(uid);
    return n > 0 && n <= 64 && strspn(uid, "0123456789abcdefABCDEF-") == n;
}

static bool is_protected(const struct playbook_env *env, const char *ns)
{
    for (size_t i = 0; env->protected_namespaces && i < env->protected_namespaces->n; i++)
        if (strcmp(env->protected_namespaces->items[i], ns) == 0)
            return true;
    return false;
}

enum outcome target_pod(const struct alert *a, const struct playbook_env *env, struct target *t,
                        struct action_result *res)
{
    memset(t, 0, sizeof(*t));
    if (target_is_host_event(a))
        return action_skip(res, "host event: no pod to act on");
    t->ns = string_field(a, "k8s.ns.name");
    t->pod = string_field(a, "k8s.pod.name");
    t->uid = string_field(a, "k8s.pod.uid");
    if (t->ns == NULL || t->pod == NULL)
        return action_skip(res, "the alert names no pod (k8s.pod.name and k8s.ns.name)");
    if (!kube_name_label(t->ns))
        return action_skip(res, "invalid name: the namespace is not a DNS-1123 label");
    if (!kube_name_subdomain(t->pod))
        return action_skip(res, "invalid name: the pod name is not a DNS-1123 subdomain");
    if (t->uid != NULL && !uid_ok(t->uid))
        return action_skip(res, "invalid name: k8s.pod.uid is not a uid");
    snprintf(res->target, sizeof(res->target), "pod %s/%s", t->ns, t->pod);
    if (is_protected(env, t->ns))
        return action_skip(res, "protected namespace %s", t->ns);
    return OUTCOME_OK;
}

enum outcome target_pod_or_host(const struct alert *a, const struct playbook_env *env, struct target *t,
                                struct action_result *res)
{
    if (!target_is_host_event(a))
        return target_pod(a, env, t, res);
    memset(t, 0, sizeof(*t));
    const char *ns = string_field(a, "k8s.ns.name");
    if (ns != NULL && is_protected(env, ns))
        return action_skip(res, "protected namespace %s: the host event names a pod there", ns);
    t->host = true;
    t->node = a->hostname;
    if (t->node[0] == 0)
        return action_skip(res, "host event without a hostname");
    if (!kube_name_subdomain(t->node))
        return action_skip(res, "invalid name: the hostname is not a node name");
    snprintf(res->target, sizeof(res->target), "node %s", t->node);
    return OUTCOME_OK;
}

const char *target_node_protected(const struct playbook_env *env, const cJSON *node)
{
    const cJSON *labels =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "metadata"), "labels");
    for (size_t i = 0; env->protected_node_labels && i < env->protected_node_labels->n; i++)
        if (cJSON_GetObjectItemCaseSensitive(labels, env->protected_node_labels->items[i]) != NULL)
            return env->protected_node_labels->items[i];
    return NULL;
}

bool target_uid_matches(const struct target *t, const cJSON *pod)
{
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "metadata"), "uid");
    return t->uid == NULL || (cJSON_IsString(uid) && strcmp(uid->valuestring, t->uid) == 0);
}

enum outcome target_get_pod(struct kube *k, const struct target *t, struct kube_response *resp,
                            struct action_result *res)
{
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
    enum outcome o = playbook_kube_get(k, path, "get pod", resp, res);
    if (resp->status == 404)
        return action_skip(res, "the pod is gone");
    if (o == OUTCOME_OK && !target_uid_matches(t, resp->json))
        return action_skip(res, "the pod was replaced: its uid is not the alert's");
    return o;
}

/* The node the pod runs on, copied into node. */
static enum outcome node_of_pod(const struct playbook_env *env, const struct target *t, char *node, size_t size,
                                struct action_result *res)
{
    struct kube_response resp;
    enum outcome o = target_get_pod(env->kube, t, &resp, res);
    const cJSON *name =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp.json, "spec"), "nodeName");
    if (o == OUTCOME_OK && !(cJSON_IsString(name) && kube_name_subdomain(name->valuestring)))
        o = action_skip(res, "the pod is not scheduled on a node");
    else if (o == OUTCOME_OK)
        snprintf(node, size, "%s", name->valuestring);
    else if (resp.status == 404)
        o = action_skip(res, "the pod is gone: its node is unknown");
    kube_response_free(&resp);
    return o;
}

enum outcome target_node(const struct alert *a, const struct playbook_env *env, char node[TARGET_NODE_MAX],
                         struct action_result *res)
{
    struct target t;
    enum outcome o = target_pod_or_host(a, env, &t, res);
    if (o == OUTCOME_OK && t.host)
        snprintf(node, TARGET_NODE_MAX, "%s", t.node);
    else if (o == OUTCOME_OK)
        o = node_of_pod(env, &t, node, TARGET_NODE_MAX, res);
    if (o == OUTCOME_OK)
        snprintf(res->target, sizeof(res->target), "node %s", node);
    return o;
}

enum outcome target_node_read(const struct playbook_env *env, const char *node, struct kube_response *resp,
                              struct action_result *res)
{
    char path[320];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
    enum outcome o = playbook_kube_get(env->kube, path, "get node", resp, res);
    if (o != OUTCOME_OK)
        return o;
    const char *label = target_node_protected(env, resp->json);
    if (label != NULL)
        return action_skip(res, "protected node: it has the label %s", label);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(resp->json, "metadata");
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion")))
        return action_fail(res, false, "get node: no metadata.resourceVersion");
    return OUTCOME_OK;
}

enum outcome target_node_patch(const struct playbook *pb, const char *node, char *body, const char *doing,
                               struct action_result *res)
{
    char path[320];
    struct kube_response resp;
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
    kube_send(pb->env->kube, "PATCH", path, "application/merge-patch+json", body, pb->dry_run, &resp);
    enum outcome o;
    if (resp.status == 200)
        o = playbook_changed(pb);
    else if (resp.status == 404)
        o = action_skip(res, "the node is gone");
    else if (resp.status == 409 || kube_patch_uid_refused(&resp))
        o = action_fail(res, true, "the node changed while it was being %s (HTTP %ld)", doing, resp.status);
    else
        o = playbook_kube_failure(&resp, "patch node", res);
    kube_response_free(&resp);
    return o;
}

enum outcome target_node_act(struct playbook *pb, const struct alert *a, target_node_change change, const char *action,
                             struct action_result *res)
{
    char node[TARGET_NODE_MAX];
    struct kube_response resp;
    bool wrote = false;
    enum outcome o = target_node(a, pb->env, node, res);
    if (o != OUTCOME_OK)
        return o;
    o = target_node_read(pb->env, node, &resp, res);
    if (o == OUTCOME_OK)
        o = change(pb, node, resp.json, &wrote, res);
    if (wrote)
        playbook_record_event(pb, a, "Node", NULL, node, NULL, action);
    kube_response_free(&resp);
    return o;
}

const struct rbac_rule target_node_rbac[] = {
    {.group = "", .resource = "pods", .verb = "get"},
    {.group = "", .resource = "nodes", .verb = "get"},
    {.group = "", .resource = "nodes", .verb = "patch"},
    {0},
};
