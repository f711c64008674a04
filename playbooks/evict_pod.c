/*
 * evict_pod.c: the `evict-pod` playbook. Evicts the pod the alert is about through the policy/v1 Eviction
 * subresource (POST .../pods/NAME/eviction), so that PodDisruptionBudgets are respected: the API server
 * answers 429 when the eviction would violate one, a transient failure retried per `retry:` and then
 * failed with the budget's message. The Eviction's deleteOptions carry dryRun ["All"] in dry run (the
 * server also honours ?dryRun=All, which kube_send adds; both say the same), the alert's pod uid as a
 * precondition (409: replaced, skipped) and grace_period_seconds. 201 Created is evicted; 404 is already
 * gone (ok, as delete-pod). The safety options of owner.h apply as for delete-pod.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/owner.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

/* {"apiVersion":"policy/v1","kind":"Eviction","metadata":{name, namespace},"deleteOptions":{...}} */
static char *eviction(const struct pod_removal *e, const struct target *t, bool dry_run)
{
    cJSON *ev = cJSON_CreateObject(), *meta;
    cJSON_AddStringToObject(ev, "apiVersion", "policy/v1");
    cJSON_AddStringToObject(ev, "kind", "Eviction");
    meta = cJSON_AddObjectToObject(ev, "metadata");
    cJSON_AddStringToObject(meta, "name", t->pod);
    cJSON_AddStringToObject(meta, "namespace", t->ns);
    cJSON_AddItemToObject(ev, "deleteOptions", kube_delete_options(dry_run, e->grace_period_seconds, t->uid));
    char *json = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    return json;
}

/* A 429: the budget's own words (the Status message and its DisruptionBudget cause), transient. */
static enum outcome budget_refused(struct kube_response *resp, struct action_result *res)
{
    const cJSON *status = kube_response_json(resp), *cause, *found = NULL;
    const cJSON *causes =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(status, "details"), "causes");
    cJSON_ArrayForEach (cause, causes) {
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(cause, "reason");
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(cause, "message");
        if (found == NULL && cJSON_IsString(reason) && strcmp(reason->valuestring, "DisruptionBudget") == 0 &&
            cJSON_IsString(message))
            found = message;
    }
    enum outcome o = playbook_kube_failure(resp, "evict pod", res); /* transient, with Retry-After */
    if (found != NULL) {
        size_t n = strlen(res->reason);
        if (n > 0 && res->reason[n - 1] == ')') /* "...budget.)" -> "...budget. The disruption budget ...)" */
            snprintf(res->reason + n - 1, sizeof(res->reason) - (n - 1), " %s)", found->valuestring);
    }
    return o;
}

/* The request itself, once the target is known and the safety options allow it. */
static enum outcome evict_now(struct playbook *pb, const struct alert *a, const struct target *t,
                              struct action_result *res)
{
    const struct pod_removal *e = pb->ctx;
    enum outcome o;
    char path[512], *body = eviction(e, t, pb->dry_run);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/eviction", t->ns, t->pod);
    struct kube_response resp;
    kube_send(pb->env->kube, "POST", path, "application/json", body, pb->dry_run, &resp);
    if (resp.status == 201 || resp.status == 200) {
        o = playbook_changed(pb);
        playbook_record_event(pb, a, "Pod", t->ns, t->pod, t->uid, "EvictPod");
    } else if (resp.status == 404) {
        o = OUTCOME_OK; /* already gone: the goal holds */
    } else if (resp.status == 409 && t->uid != NULL) {
        o = action_skip(res, "the pod was replaced: its uid is not the alert's");
    } else if (resp.status == 429) {
        o = budget_refused(&resp, res);
    } else {
        o = playbook_kube_failure(&resp, "evict pod", res);
    }
    kube_response_free(&resp);
    return o;
}

static enum outcome evict_pod_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    return pod_removal_run(pb, a, evict_now, res);
}

/* The Eviction (a create on the pods/eviction subresource); Events by rbac.c, safety reads by rbac_for. */
static const struct rbac_rule evict_pod_rbac[] = {
    {.group = "", .resource = "pods/eviction", .verb = "create"},
    {0},
};

const struct playbook_type playbook_evict_pod = {
    .name = "evict-pod",
    .needs_kube = true,
    .rbac = evict_pod_rbac,
    .rbac_for = pod_removal_rbac_for,
    .rbac_namespace = pod_removal_rbac_namespace,
    .find_target = target_pod,
    .params = pod_removal_params,
    .ctx_size = sizeof(struct pod_removal),
    .init = pod_removal_init,
    .run = evict_pod_run,
};
