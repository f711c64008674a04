/* labels.c: label changes from the config, checked, and the merge patches that apply them (see labels.h). */
#include "playbookd/labels.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/kube.h"

#define KEY_RULE                                                                                                       \
    "an optional DNS subdomain prefix and '/', then a name of 1-63 characters [A-Za-z0-9-_.] beginning and "           \
    "ending with a letter or digit"
#define VALUE_RULE "at most 63 characters [A-Za-z0-9-_.] beginning and ending with a letter or digit, or empty"

static int load_change(struct label_change *c, const struct config_node *entry, struct error *err)
{
    if (!kube_qualified_name(entry->key))
        return config_key_error(err, entry, "not a valid label key: %s", KEY_RULE);
    if (entry->kind != NODE_SCALAR)
        return config_node_error(err, entry, "expected a label value, or null to remove the label");
    if (!entry->is_null && !kube_label_value(entry->value))
        return config_node_error(err, entry, "not a valid label value: %s (null removes the label)", VALUE_RULE);
    if ((c->key = strdup(entry->key)) == NULL || (!entry->is_null && (c->value = strdup(entry->value)) == NULL))
        return config_node_error(err, entry, "out of memory");
    return 0;
}

int label_set_load(struct label_set *set, const struct config_node *params, const struct config_node *node,
                   struct error *err)
{
    memset(set, 0, sizeof(*set));
    if (node == NULL && params == NULL)
        return error_set(err, "missing required parameter 'labels'");
    if (node == NULL)
        return config_node_error(err, params, "missing required parameter 'labels'");
    if (node->kind != NODE_MAP)
        return config_node_error(err, node,
                                 "expected a map of label keys to values, such as {falco.org/alert: \"true\"}");
    if (node->n_children == 0)
        return config_node_error(err, node, "at least one label is needed");
    if (node->n_children > LABELS_MAX)
        return config_node_error(err, node, "at most %d labels", LABELS_MAX);
    if ((set->items = calloc(node->n_children, sizeof(*set->items))) == NULL)
        return config_node_error(err, node, "out of memory");
    for (; set->n < node->n_children; set->n++)
        if (load_change(&set->items[set->n], &node->children[set->n], err) != 0) {
            set->n++; /* what it allocated is freed with the rest */
            return -1;
        }
    return 0;
}

void label_set_free(struct label_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->items[i].key);
        free(set->items[i].value);
    }
    free(set->items);
    memset(set, 0, sizeof(*set));
}

bool label_set_applied(const struct label_set *set, const cJSON *labels)
{
    for (size_t i = 0; i < set->n; i++) {
        const cJSON *have = cJSON_GetObjectItemCaseSensitive(labels, set->items[i].key);
        const char *want = set->items[i].value;
        if (want == NULL ? have != NULL : !(cJSON_IsString(have) && strcmp(have->valuestring, want) == 0))
            return false;
    }
    return true;
}

char *label_patch(const struct label_change *items, size_t n, const char *uid, const char *resource_version,
                  const struct expiry_write *w)
{
    cJSON *patch = cJSON_CreateObject();
    cJSON *meta = patch ? kube_patch_metadata(patch, uid, resource_version) : NULL;
    cJSON *labels = meta ? cJSON_AddObjectToObject(meta, "labels") : NULL;
    char *json = NULL;
    for (size_t i = 0; labels != NULL && i < n; i++) {
        cJSON *value = items[i].value ? cJSON_CreateString(items[i].value) : cJSON_CreateNull();
        if (value == NULL || !cJSON_AddItemToObject(labels, items[i].key, value)) {
            cJSON_Delete(value);
            goto out;
        }
    }
    if (labels != NULL && w != NULL)
        expiry_merge_patch(meta, w);
    if (labels != NULL)
        json = cJSON_PrintUnformatted(patch);
out:
    cJSON_Delete(patch);
    return json;
}

size_t label_marks(const struct label_change *items, size_t n, struct expiry_mark *marks)
{
    size_t m = 0;
    for (size_t i = 0; i < n && m < LABELS_MAX; i++)
        if (items[i].value != NULL)
            marks[m++] = (struct expiry_mark){.kind = EXPIRY_LABEL_SET, .key = items[i].key, .value = items[i].value};
    return m;
}

/* The patch for the pod. With expire_after, or when another playbook has it (a change made for good takes
 * itself out of playbookd's marks), from the pod as read now: guarded by its resourceVersion (*guarded). */
static enum outcome pod_patch_body(const struct playbook *pb, const struct target *t, const struct label_change *items,
                                   size_t n, char **body, bool *guarded, struct action_result *res)
{
    struct expiry_mark marks[LABELS_MAX];
    struct expiry_write w;
    struct kube_response resp;
    *body = NULL;
    *guarded = pb->expire_after_ms > 0 || pb->env->expiry_active;
    if (!*guarded) {
        *body = label_patch(items, n, t->uid, NULL, NULL);
        return *body ? OUTCOME_OK : action_fail(res, true, "out of memory");
    }
    enum outcome o = target_get_pod(pb->env->kube, t, &resp, res);
    const cJSON *version =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp.json, "metadata"), "resourceVersion");
    int own = o == OUTCOME_OK ? expiry_for(pb, resp.json, marks, label_marks(items, n, marks), &w, res) : 0;
    if (o == OUTCOME_OK && own < 0)
        o = OUTCOME_FAILED;
    else if (o == OUTCOME_OK && !cJSON_IsString(version))
        o = action_fail(res, false, "get pod: no metadata.resourceVersion");
    else if (o == OUTCOME_OK && (*body = label_patch(items, n, t->uid, version->valuestring, own ? &w : NULL)) == NULL)
        o = action_fail(res, true, "out of memory");
    kube_response_free(&resp);
    return o;
}

enum outcome label_pod_patch(const struct playbook *pb, const struct target *t, const struct label_change *items,
                             size_t n, cJSON **pod, struct action_result *res)
{
    char path[512], *body;
    bool guarded;
    enum outcome o = pod_patch_body(pb, t, items, n, &body, &guarded, res);
    if (o != OUTCOME_OK)
        return o;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
    struct kube_response resp;
    kube_send(pb->env->kube, "PATCH", path, "application/merge-patch+json", body, pb->dry_run, &resp);
    if (resp.status == 200 && kube_response_json(&resp) == NULL)
        o = action_fail(res, true, "label pod: the answer is not JSON");
    else if (resp.status == 200 && pod != NULL)
        *pod = resp.json, resp.json = NULL; /* taken */
    else if (resp.status == 404)
        o = action_skip(res, "the pod is gone");
    else if (resp.status == 409 && guarded) /* its resourceVersion: it changed since it was read */
        o = action_fail(res, true, "the pod changed while it was being labelled (HTTP 409)");
    else if (resp.status == 409 || (t->uid != NULL && kube_patch_uid_refused(&resp)))
        o = action_skip(res, "the pod was replaced: its uid is not the alert's");
    else if (resp.status != 200)
        o = playbook_kube_failure(&resp, "label pod", res);
    kube_response_free(&resp);
    return o;
}

const struct param_spec labels_params[] = {
    {.name = "labels", .type = PARAM_NODE, .offset = offsetof(struct labels_ctx, node)},
    {0},
};

int labels_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct labels_ctx *l = pb->ctx;
    l->node = NULL; /* params_load's pointer is into a copy freed since: read the map itself */
    return label_set_load(&l->set, params, params ? config_node_get(params, "labels") : NULL, err);
}

void labels_destroy(struct playbook *pb)
{
    struct labels_ctx *l = pb->ctx;
    if (l != NULL)
        label_set_free(&l->set);
}
