/*
 * delete_pod.c: the `delete-pod` playbook. Deletes the pod the alert is about, with the pod's uid as a
 * precondition when the alert carries it, so a new pod that reuses the name (a StatefulSet's) is never
 * deleted. Already gone (404) is ok; a replaced pod (409) is skipped. The safety options of owner.h
 * (ignore_daemonsets, ignore_statefulsets, ignore_standalone_pods, min_healthy_replicas) read the pod and
 * its owner first and may skip it.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "playbookd/kube.h"
#include "playbookd/owner.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

/* The API server reads DeleteOptions from the body when there is one and then ignores the query, so
 * dry run goes in the body too. */
static char *delete_options(const struct pod_removal *d, const struct target *t, bool dry_run)
{
    cJSON *opts = kube_delete_options(dry_run, d->grace_period_seconds, t->uid);
    cJSON_AddStringToObject(opts, "apiVersion", "v1");
    cJSON_AddStringToObject(opts, "kind", "DeleteOptions");
    char *json = cJSON_PrintUnformatted(opts);
    cJSON_Delete(opts);
    return json;
}

/* The request itself, once the target is known and the safety options allow it. */
static enum outcome delete_now(struct playbook *pb, const struct alert *a, const struct target *t,
                               struct action_result *res)
{
    const struct pod_removal *d = pb->ctx;
    enum outcome o;
    char path[512], *body = delete_options(d, t, pb->dry_run);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
    struct kube_response resp;
    kube_send(pb->env->kube, "DELETE", path, "application/json", body, pb->dry_run, &resp);
    if (resp.status == 200 || resp.status == 202) {
        o = playbook_changed(pb);
        playbook_record_event(pb, a, "Pod", t->ns, t->pod, t->uid, "DeletePod");
    } else if (resp.status == 404) {
        o = OUTCOME_OK; /* already gone: the goal holds */
    } else if (resp.status == 409) {
        o = action_skip(res, "the pod was replaced: its uid is not the alert's");
    } else {
        o = playbook_kube_failure(&resp, "delete pod", res);
    }
    kube_response_free(&resp);
    return o;
}

static enum outcome delete_pod_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    return pod_removal_run(pb, a, delete_now, res);
}

/* The DELETE; its Event is added for every API-calling playbook by rbac.c, the safety reads by rbac_for. */
static const struct rbac_rule delete_pod_rbac[] = {
    {.group = "", .resource = "pods", .verb = "delete"},
    {0},
};

const struct playbook_type playbook_delete_pod = {
    .name = "delete-pod",
    .needs_kube = true,
    .rbac = delete_pod_rbac,
    .rbac_for = pod_removal_rbac_for,
    .rbac_namespace = pod_removal_rbac_namespace,
    .find_target = target_pod,
    .params = pod_removal_params,
    .ctx_size = sizeof(struct pod_removal),
    .init = pod_removal_init,
    .run = delete_pod_run,
};
