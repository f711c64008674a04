/*
 * taint_node.c: the `taint-node` playbook. Taints the node the pod runs on (spec.nodeName, read from the
 * API), or for a host event the node named by the alert's hostname. Node.spec.taints is an atomic list,
 * so the taint is added with a JSON patch guarded by a test of metadata.resourceVersion: existing taints
 * are kept and a concurrent writer is never overwritten (a stale version is retried from a fresh GET).
 * A protected node (a label of protected_nodes, read from the same GET) is never tainted. Finding and reading
 * the node is target.c's, shared by every node playbook. With expire_after, the same patch carries
 * playbookd's marks (expiry.h), and a taint playbookd added before gets its expiry extended; a taint someone
 * else added is left alone and never marked.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/kube.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

struct taint_node {
    char *key, *value, *effect;
};

static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};

static const struct param_spec taint_node_params[] = {
    {.name = "key", .type = PARAM_STRING, .def = "falco/alert", .offset = offsetof(struct taint_node, key)},
    {.name = "value", .type = PARAM_STRING, .def = "true", .offset = offsetof(struct taint_node, value)},
    {.name = "effect",
     .type = PARAM_CHOICE,
     .def = "NoSchedule",
     .offset = offsetof(struct taint_node, effect),
     .choices = effects},
    {0},
};

static int taint_node_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct taint_node *t = pb->ctx;
    if (t->key == NULL || !kube_qualified_name(t->key))
        return config_node_error(err, config_node_get(params, "key"), "not a valid taint key");
    if (t->value == NULL && (t->value = calloc(1, 1)) == NULL) /* an empty value is allowed */
        return error_set(err, "out of memory");
    if (!kube_label_value(t->value))
        return config_node_error(err, config_node_get(params, "value"), "not a valid taint value");
    return 0;
}

static bool has_taint(const cJSON *taints, const struct taint_node *t)
{
    const cJSON *item;
    cJSON_ArrayForEach (item, taints) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(item, "key");
        const cJSON *effect = cJSON_GetObjectItemCaseSensitive(item, "effect");
        if (cJSON_IsString(key) && cJSON_IsString(effect) && strcmp(key->valuestring, t->key) == 0 &&
            strcmp(effect->valuestring, t->effect) == 0)
            return true;
    }
    return false;
}

/* The op that adds the taint: appended to spec.taints, or creating it. */
static cJSON *add_taint(const struct taint_node *t, bool have_taints, bool have_spec)
{
    cJSON *add = cJSON_CreateObject(), *taint = cJSON_CreateObject();
    cJSON_AddStringToObject(taint, "key", t->key);
    if (t->value[0])
        cJSON_AddStringToObject(taint, "value", t->value);
    cJSON_AddStringToObject(taint, "effect", t->effect);
    cJSON_AddStringToObject(add, "op", "add");
    if (have_taints) {
        cJSON_AddStringToObject(add, "path", "/spec/taints/-");
        cJSON_AddItemToObject(add, "value", taint);
    } else {
        cJSON *list = cJSON_CreateArray();
        cJSON_AddItemToArray(list, taint);
        cJSON_AddStringToObject(add, "path", have_spec ? "/spec/taints" : "/spec");
        if (have_spec) {
            cJSON_AddItemToObject(add, "value", list);
        } else {
            cJSON *spec = cJSON_AddObjectToObject(add, "value");
            cJSON_AddItemToObject(spec, "taints", list);
        }
    }
    return add;
}

/* [test resourceVersion, add the taint (unless tainted), playbookd's marks (w, when not NULL)]. */
static char *taint_patch(const struct taint_node *t, const cJSON *node, bool tainted, const struct expiry_write *w)
{
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "metadata"),
                                                            "resourceVersion"); /* checked when read */
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(node, "spec");
    cJSON *ops = cJSON_CreateArray(), *test = cJSON_CreateObject();
    cJSON_AddItemToArray(ops, test);
    cJSON_AddStringToObject(test, "op", "test");
    cJSON_AddStringToObject(test, "path", "/metadata/resourceVersion");
    cJSON_AddStringToObject(test, "value", version->valuestring);
    if (!tainted)
        cJSON_AddItemToArray(
            ops, add_taint(t, cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(spec, "taints")), cJSON_IsObject(spec)));
    if (w != NULL)
        expiry_json_patch(ops, node, w);
    char *json = cJSON_PrintUnformatted(ops);
    cJSON_Delete(ops);
    return json;
}

/* Adds the taint unless the node has it; *wrote tells whether a patch was accepted. */
static enum outcome patch_node(struct playbook *pb, const char *name, const cJSON *node, bool *wrote,
                               struct action_result *res)
{
    const struct taint_node *t = pb->ctx;
    char path[320];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", name);
    const struct expiry_mark mark = {.kind = EXPIRY_TAINT, .key = t->key, .value = t->effect};
    struct expiry_write w;
    const cJSON *taints = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "spec"), "taints");
    bool tainted = has_taint(taints, t);
    int marks = expiry_for(pb, node, &mark, 1, &w, res);
    *wrote = false;
    if (marks < 0)
        return OUTCOME_FAILED;
    if (tainted) /* by someone else: left alone; by playbookd: its expiry extended, or cancelled for good */
        expiry_note(res, "already tainted", pb, marks);
    if (tainted && marks == 0)
        return OUTCOME_OK; /* nothing to write */
    char *body = taint_patch(t, node, tainted, marks > 0 ? &w : NULL);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    struct kube_response resp;
    kube_send(pb->env->kube, "PATCH", path, "application/json-patch+json", body, pb->dry_run, &resp);
    enum outcome o;
    *wrote = resp.status == 200;
    if (resp.status == 200)
        o = playbook_changed(pb);
    else if (resp.status == 409 || (resp.status == 422 && kube_patch_test_failed(kube_response_json(&resp))))
        o = action_fail(res, true, "the node changed while it was being tainted (HTTP %ld)", resp.status);
    else
        o = playbook_kube_failure(&resp, "patch node", res);
    kube_response_free(&resp);
    return o;
}

static enum outcome taint_node_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    return target_node_act(pb, a, patch_node, "TaintNode", res);
}

const struct playbook_type playbook_taint_node = {
    .name = "taint-node",
    .needs_kube = true,
    .expires = true,
    .rbac = target_node_rbac,
    .find_target = target_pod_or_host,
    .params = taint_node_params,
    .ctx_size = sizeof(struct taint_node),
    .init = taint_node_init,
    .run = taint_node_run,
};
