/*
 * label_node.c: the `label-node` playbook. Sets (or, for a null value, removes) the configured labels on the
 * node taint-node would taint (target.c: the pod's node, or the host event's). The node is read first: a
 * protected node is skipped, and a node that already has the labels is left as it is ("already labelled",
 * no write, no Event). The merge patch carries the node's uid and resourceVersion as read, so a node that
 * changed in between (it may have become protected) is read again on the retry, never overwritten. With
 * expire_after the patch carries playbookd's marks (expiry.h) for the labels it sets; a node labelled so by
 * playbookd before gets its expiry extended, one labelled so by someone else is left alone.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/kube.h"
#include "playbookd/labels.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

/* Patches the node read (its JSON) unless it has the labels; *wrote: the API server accepted a patch. */
static enum outcome label_node(struct playbook *pb, const char *node, const cJSON *read, bool *wrote,
                               struct action_result *res)
{
    const struct labels_ctx *l = pb->ctx;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(read, "metadata");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(meta, "uid");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion"); /* checked when read */
    struct expiry_mark marks[LABELS_MAX];
    struct expiry_write w;
    bool applied = label_set_applied(&l->set, cJSON_GetObjectItemCaseSensitive(meta, "labels"));
    int own = expiry_for(pb, read, marks, label_marks(l->set.items, l->set.n, marks), &w, res);
    if (own < 0)
        return OUTCOME_FAILED;
    if (applied)
        expiry_note(res, "already labelled", pb, own);
    if (applied && own == 0)
        return OUTCOME_OK;
    char *body = label_patch(l->set.items, l->set.n, cJSON_IsString(uid) ? uid->valuestring : NULL,
                             version->valuestring, own ? &w : NULL);
    enum outcome o = target_node_patch(pb, node, body, "labelled", res);
    *wrote = o == OUTCOME_OK || o == OUTCOME_DRY_RUN;
    return o;
}

static enum outcome label_node_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    return target_node_act(pb, a, label_node, "LabelNode", res);
}

const struct playbook_type playbook_label_node = {
    .name = "label-node",
    .needs_kube = true,
    .expires = true,
    .rbac = target_node_rbac,
    .find_target = target_pod_or_host,
    .params = labels_params,
    .ctx_size = sizeof(struct labels_ctx),
    .init = labels_init,
    .run = label_node_run,
    .destroy = labels_destroy,
};
