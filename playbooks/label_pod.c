/*
 * label_pod.c: the `label-pod` playbook. Sets (or, for a null value, removes) the configured labels on the
 * alert's pod with one merge patch that carries the pod's uid when the alert has it, so a replacement pod
 * of the same name is not labelled (labels.c). The patch is idempotent: a second run changes nothing.
 */
#include "playbookd/labels.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

static enum outcome label_pod_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    const struct labels_ctx *l = pb->ctx;
    struct target t;
    enum outcome o = target_pod(a, pb->env, &t, res);
    if (o == OUTCOME_OK)
        o = label_pod_patch(pb, &t, l->set.items, l->set.n, NULL, res);
    if (o != OUTCOME_OK)
        return o;
    playbook_record_event(pb, a, "Pod", t.ns, t.pod, t.uid, "LabelPod");
    return playbook_changed(pb);
}

/* PATCH the pod: nothing is read. */
static const struct rbac_rule label_pod_rbac[] = {
    {.group = "", .resource = "pods", .verb = "patch"},
    {0},
};

const struct playbook_type playbook_label_pod = {
    .name = "label-pod",
    .needs_kube = true,
    .expires = true,
    .rbac = label_pod_rbac,
    .find_target = target_pod,
    .params = labels_params,
    .ctx_size = sizeof(struct labels_ctx),
    .init = labels_init,
    .run = label_pod_run,
    .destroy = labels_destroy,
};
