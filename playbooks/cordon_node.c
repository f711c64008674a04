/*
 * cordon_node.c: the `cordon-node` playbook. Cordons (spec.unschedulable: true) the node taint-node would
 * taint (target.c: the pod's node, or the host event's). The node is read first: a protected node is
 * skipped, and a node already cordoned is left as it is ("already cordoned", no write, no Event). Otherwise
 * one merge patch sets spec.unschedulable and the annotation playbookd.io/cordoned-by: playbookd, which says
 * the cordon is playbookd's own (a cordon someone else made never gets it, so it is never playbookd's to
 * undo). The patch carries the node's uid and resourceVersion as read: if the node changed in between
 * (someone cordoned it, or it became protected), the API server answers 409 and the retry reads it again,
 * so the annotation can never be put on another's cordon. A merge patch rather than a JSON patch because
 * it also creates metadata.annotations when the node has none, and needs no escaping of the key. With
 * expire_after the patch carries playbookd's marks (expiry.h); a node playbookd cordoned before gets its
 * expiry extended; another's cordon is left alone and never marked.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/kube.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

/* No parameters: the table is empty so that unknown keys are still refused. */
static const struct param_spec cordon_node_params[] = {{0}};

static char *cordon_patch(const char *uid, const char *version, const struct expiry_write *w)
{
    cJSON *patch = cJSON_CreateObject(), *spec = NULL;
    cJSON *meta = patch ? kube_patch_metadata(patch, uid, version) : NULL;
    cJSON *annotations = meta ? cJSON_AddObjectToObject(meta, "annotations") : NULL;
    char *json = NULL;
    if (annotations != NULL && cJSON_AddStringToObject(annotations, TARGET_CORDONED_BY, TARGET_CORDONED_BY_VALUE) &&
        (spec = cJSON_AddObjectToObject(patch, "spec")) != NULL && cJSON_AddTrueToObject(spec, "unschedulable")) {
        if (w != NULL)
            expiry_merge_patch(meta, w);
        json = cJSON_PrintUnformatted(patch);
    }
    cJSON_Delete(patch);
    return json;
}

/* Cordons the node read (its JSON) unless it is cordoned; *wrote: the API server accepted a patch. */
static enum outcome cordon_node(struct playbook *pb, const char *node, const cJSON *read, bool *wrote,
                                struct action_result *res)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(read, "metadata");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(meta, "uid");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"); /* checked when read */
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(read, "spec");
    const struct expiry_mark mark = {.kind = EXPIRY_CORDON};
    struct expiry_write w;
    int own = expiry_for(pb, read, &mark, 1, &w, res); /* another's cordon is never playbookd's */
    if (own < 0)
        return OUTCOME_FAILED;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "unschedulable"))) {
        const cJSON *by =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meta, "annotations"), TARGET_CORDONED_BY);
        expiry_note(res, own || by != NULL ? "already cordoned by playbookd" : "already cordoned", pb, own);
        if (own == 0)
            return OUTCOME_OK;
    }
    char *body = cordon_patch(cJSON_IsString(uid) ? uid->valuestring : NULL, version->valuestring, own ? &w : NULL);
    enum outcome o = target_node_patch(pb, node, body, "cordoned", res);
    *wrote = o == OUTCOME_OK || o == OUTCOME_DRY_RUN;
    return o;
}

static enum outcome cordon_node_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    return target_node_act(pb, a, cordon_node, "CordonNode", res);
}

const struct playbook_type playbook_cordon_node = {
    .name = "cordon-node",
    .needs_kube = true,
    .expires = true,
    .rbac = target_node_rbac,
    .find_target = target_pod_or_host,
    .params = cordon_node_params,
    .run = cordon_node_run,
};
