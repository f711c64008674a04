/*
 * owner.c: delete and evict safety (owner.h). The pod's controller is its ownerReference with
 * controller: true; for min_healthy_replicas the owner is read from the API: a Deployment (through the
 * pod's ReplicaSet), a bare ReplicaSet or a StatefulSet, desired spec.replicas; a DaemonSet, desired
 * status.desiredNumberScheduled. Its healthy pods are counted now by owner_count.c (the controllers' status
 * lags the pods: two checks a moment apart would both see a pod deleted by the first as ready). The pod
 * itself is not among those that stay. Other owner kinds (Job, ReplicationController, custom resources)
 * have no replica count here: the action goes ahead. With min_healthy_replicas the check holds the Lease of
 * the workload whose numbers it reads, named after that workload's uid, from before the numbers are read
 * until the caller has acted. Each acquisition is its own holder, so the Lease keeps apart two workers of
 * this process as well as two replicas of playbookd; nothing process-wide is held, so a wait for one
 * workload's Lease never holds up another workload.
 */
#include "playbookd/owner.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/lease.h"

#define OWNER_NUMBER_MAX 1000000 /* a replica count beyond this is not believed: read as this */

/* The reads behind ignore_* (the pod's ownerReferences) and behind min_healthy_replicas (the owners too). */
static const struct rbac_rule pod_read[] = {
    {.group = "", .resource = "pods", .verb = "get"},
    {0},
};
static const struct rbac_rule owner_reads[] = {
    {.group = "", .resource = "pods", .verb = "get"},
    {.group = "", .resource = "pods", .verb = "list"},
    {.group = "apps", .resource = "replicasets", .verb = "get"},
    {.group = "apps", .resource = "replicasets", .verb = "list"},
    {.group = "apps", .resource = "deployments", .verb = "get"},
    {.group = "apps", .resource = "statefulsets", .verb = "get"},
    {.group = "apps", .resource = "daemonsets", .verb = "get"},
    {.group = "coordination.k8s.io", .resource = "leases", .verb = "get", .namespaced = true},
    {.group = "coordination.k8s.io", .resource = "leases", .verb = "create", .namespaced = true},
    {.group = "coordination.k8s.io", .resource = "leases", .verb = "update", .namespaced = true},
    {.group = "coordination.k8s.io", .resource = "leases", .verb = "delete", .namespaced = true},
    {0},
};

#define LEASE_PREFIX "playbookd-replicas-" /* + the workload's uid */

/* An owner as the checks see it: apps/v1 kind, name and uid, from the API (checked before use). */
struct owner_ref {
    const char *kind, *name, *uid;
};

int owner_safety_init(struct owner_safety *s, const struct config_node *params, struct error *err)
{
    const char *text = s->min_healthy_text;
    if (s->lock_namespace == NULL || !kube_name_label(s->lock_namespace))
        return config_node_error(err, config_node_get(params, "lock_namespace"),
                                 "not a valid namespace name (a DNS-1123 label)");
    if (text == NULL)
        return 0;
    size_t digits = strspn(text, "0123456789");
    s->percent = text[digits] == '%' && text[digits + 1] == 0;
    long max = s->percent ? 100 : OWNER_MIN_HEALTHY_MAX;
    bool ok = digits > 0 && digits <= 6 && (s->percent || text[digits] == 0);
    s->min_healthy = ok ? strtol(text, NULL, 10) : -1;
    if (!ok || s->min_healthy > max)
        return config_node_error(err, config_node_get(params, "min_healthy_replicas"),
                                 "expected a number of replicas (0 to %d) or a percentage (0%% to 100%%)",
                                 OWNER_MIN_HEALTHY_MAX);
    return 0;
}

bool owner_safety_enabled(const struct owner_safety *s)
{
    return s->ignore_daemonsets || s->ignore_statefulsets || s->ignore_standalone_pods || s->min_healthy_text != NULL;
}

const char *owner_safety_lock_namespace(const struct owner_safety *s)
{
    return s->min_healthy_text != NULL ? s->lock_namespace : NULL;
}

const struct rbac_rule *owner_safety_rbac(const struct owner_safety *s)
{
    if (s->min_healthy_text != NULL)
        return owner_reads;
    return owner_safety_enabled(s) ? pod_read : NULL;
}

static const char *string_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A count from the object (obj.section.key), 0 when absent, def when absent and def >= 0. */
static long number_at(const cJSON *obj, const char *section, const char *key, long def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, section), key);
    if (!cJSON_IsNumber(v))
        return def >= 0 ? def : 0;
    return v->valuedouble < 0 ? 0 : v->valuedouble > OWNER_NUMBER_MAX ? OWNER_NUMBER_MAX : (long)v->valuedouble;
}

/* The apps/v1 controller of an object (its ownerReference with controller: true), or false when none. A
 * controller of another API group keeps its kind with a NULL name: known to exist, not one of ours. */
static bool controller_of(const cJSON *obj, struct owner_ref *out)
{
    const cJSON *refs =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "ownerReferences");
    const cJSON *ref;
    cJSON_ArrayForEach (ref, refs) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
            continue;
        const char *version = string_at(ref, "apiVersion");
        out->kind = string_at(ref, "kind");
        out->name = version != NULL && strcmp(version, "apps/v1") == 0 ? string_at(ref, "name") : NULL;
        out->uid = string_at(ref, "uid");
        if (out->kind == NULL)
            out->kind = "unknown";
        return true;
    }
    return false;
}

static bool is_kind(const struct owner_ref *o, const char *kind)
{
    return o->name != NULL && strcmp(o->kind, kind) == 0;
}

/* The kind lowercased, as resources and messages name it ("ReplicaSet" -> "replicaset"). */
static void lowercase(char *dst, size_t size, const char *kind)
{
    snprintf(dst, size, "%s", kind);
    for (char *p = dst; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
}

/* GETs the apps/v1 object o in ns into resp (its JSON in resp->json). */
static enum outcome get_owner(struct kube *k, const char *ns, const struct owner_ref *o, struct kube_response *resp,
                              struct action_result *res)
{
    char path[512], what[64], resource[32];
    memset(resp, 0, sizeof(*resp));
    if (!kube_name_subdomain(o->name))
        return action_fail(res, false, "the pod's owner %s has an invalid name", o->kind);
    lowercase(resource, sizeof(resource), o->kind);
    snprintf(what, sizeof(what), "get %s", resource);
    snprintf(path, sizeof(path), "/apis/apps/v1/namespaces/%s/%ss/%s", ns, resource, o->name);
    return playbook_kube_get(k, path, what, resp, res);
}

/* The desired replicas of the workload object of kind `kind`. */
static long workload_desired(const cJSON *obj, const char *kind)
{
    if (strcmp(kind, "DaemonSet") == 0)
        return number_at(obj, "status", "desiredNumberScheduled", 0);
    return number_at(obj, "spec", "replicas", 1); /* spec.replicas defaults to 1 */
}

/* min_healthy_replicas against the healthy pods that stay (`after`): skipped with the numbers when below. */
static enum outcome compare(const struct owner_safety *s, const char *kind, const char *ns, const char *name,
                            long desired, long after, struct action_result *res)
{
    long min = s->percent ? (s->min_healthy * desired + 99) / 100 : s->min_healthy; /* rounded up */
    if (after >= min)
        return OUTCOME_OK;
    char lower[32], limit[64];
    lowercase(lower, sizeof(lower), kind);
    if (s->percent)
        snprintf(limit, sizeof(limit), "%ld%% of %ld = %ld", s->min_healthy, desired, min);
    else
        snprintf(limit, sizeof(limit), "%ld", min);
    return action_skip(res, "%s %s/%s would have %ld ready replica%s of %ld desired, min_healthy_replicas %s", lower,
                       ns, name, after, after == 1 ? "" : "s", desired, limit);
}

/* The Lease is never renewed: its duration leaves the check about as long as the action may take (one
 * request, its timeout), plus a margin. */
#define LEASE_ACT_MARGIN_MS 5000

static long lease_duration_s(const struct kube *k)
{
    return (2 * kube_timeout_ms(k) + LEASE_ACT_MARGIN_MS + 999) / 1000;
}

/* After a check that found the action allowed: whether the Lease still covers the action, which may take
 * up to one request's timeout; else failed (transient), rather than act when another may take it over. */
static enum outcome lease_covers_action(struct kube *k, const struct owner_hold *hold, const char *kind, const char *ns,
                                        const char *name, struct action_result *res)
{
    if (!hold->lease.held || lease_left_ms(&hold->lease) >= kube_timeout_ms(k) + LEASE_ACT_MARGIN_MS)
        return OUTCOME_OK;
    char lower[32];
    lowercase(lower, sizeof(lower), kind);
    return action_fail(res, true, "the check on %s %s/%s took too long: its lease could expire before the action ends",
                       lower, ns, name);
}

/* Takes the Lease of workload o (kind, name and uid from an ownerReference) into hold. */
static enum outcome lease_owner(const struct owner_safety *s, struct kube *k, const char *ns, const struct owner_ref *o,
                                struct owner_hold *hold, struct action_result *res)
{
    char name[LEASE_NAME_MAX + 1], what[LEASE_NAME_MAX + 96], kind[32];
    if (!kube_name_subdomain(o->name))
        return action_fail(res, false, "the pod's owner %s has an invalid name", o->kind);
    int n = snprintf(name, sizeof(name), LEASE_PREFIX "%s", o->uid ? o->uid : "");
    if (o->uid == NULL || n < 0 || (size_t)n >= sizeof(name) || !kube_name_subdomain(name))
        return action_fail(res, false, "the pod's owner %s %s/%s has an invalid uid", o->kind, ns, o->name);
    lowercase(kind, sizeof(kind), o->kind);
    snprintf(what, sizeof(what), "%s %s/%s", kind, ns, o->name);
    return lease_acquire(k, s->lock_namespace, name, what, s->lock_wait_ms, lease_duration_s(k), hold->lease.dry_run,
                         &hold->lease, res);
}

/* The workload read by name is the one the ownerReference names (its uid): else it was deleted and made
 * again meanwhile, and its numbers and its Lease would be another's: failed, transient (read again later). */
static enum outcome same_owner(const cJSON *obj, const struct owner_ref *o, const char *ns, struct action_result *res)
{
    const char *uid = string_at(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "uid");
    if (o->uid == NULL || (uid != NULL && strcmp(uid, o->uid) == 0))
        return OUTCOME_OK;
    char lower[32];
    lowercase(lower, sizeof(lower), o->kind);
    return action_fail(res, true, "%s %s/%s was replaced (its uid is not the ownerReference's)", lower, ns, o->name);
}

/*
 * min_healthy_replicas for the pod's controller o: the workload (a ReplicaSet's Deployment when it has one,
 * which the ReplicaSet is read to know), its Lease taken into hold, then its healthy pods counted now. A
 * StatefulSet, DaemonSet or Deployment is read after the Lease is held; a bare ReplicaSet before it.
 */
static enum outcome check_replicas(const struct owner_safety *s, struct kube *k, const struct target *t,
                                   struct owner_ref o, struct owner_hold *hold, struct action_result *res)
{
    struct kube_response rs = {0}, top = {0};
    struct owner_ref up;
    long after = 0;
    const cJSON *obj = NULL;
    enum outcome out = OUTCOME_OK;
    if (is_kind(&o, "ReplicaSet")) {
        out = get_owner(k, t->ns, &o, &rs, res);
        obj = rs.json;
        if (out == OUTCOME_OK && controller_of(rs.json, &up) && is_kind(&up, "Deployment"))
            o = up, obj = NULL;
    }
    if (out == OUTCOME_OK)
        out = lease_owner(s, k, t->ns, &o, hold, res); /* before any number is read */
    if (out == OUTCOME_OK && obj == NULL && (out = get_owner(k, t->ns, &o, &top, res)) == OUTCOME_OK)
        obj = top.json;
    if (out == OUTCOME_OK)
        out = same_owner(obj, &o, t->ns, res);
    if (out == OUTCOME_OK)
        out = owner_count_healthy(k, t->ns, obj, is_kind(&o, "Deployment"), t->pod, &after, res);
    if (out == OUTCOME_OK)
        out = compare(s, o.kind, t->ns, o.name, workload_desired(obj, o.kind), after, res);
    if (out == OUTCOME_OK)
        out = lease_covers_action(k, hold, o.kind, t->ns, o.name, res);
    kube_response_free(&top);
    kube_response_free(&rs);
    return out;
}

static enum outcome check_owner(const struct owner_safety *s, struct kube *k, const struct target *t, const cJSON *pod,
                                struct owner_hold *hold, struct action_result *res)
{
    struct owner_ref o;
    if (!controller_of(pod, &o))
        return s->ignore_standalone_pods
                   ? action_skip(res, "a standalone pod (no controller) and ignore_standalone_pods")
                   : OUTCOME_OK;
    if (s->ignore_daemonsets && is_kind(&o, "DaemonSet"))
        return action_skip(res, "a DaemonSet's pod (daemonset %s/%s) and ignore_daemonsets", t->ns, o.name);
    if (s->ignore_statefulsets && is_kind(&o, "StatefulSet"))
        return action_skip(res, "a StatefulSet's pod (statefulset %s/%s) and ignore_statefulsets", t->ns, o.name);
    bool counted = is_kind(&o, "ReplicaSet") || is_kind(&o, "StatefulSet") || is_kind(&o, "DaemonSet");
    if (s->min_healthy_text == NULL || !counted)
        return OUTCOME_OK;
    return check_replicas(s, k, t, o, hold, res);
}

enum outcome owner_safety_check(const struct owner_safety *s, struct kube *k, const struct target *t, bool dry_run,
                                struct owner_hold *hold, bool *gone, struct action_result *res)
{
    *gone = false;
    hold->lease.held = false;
    hold->lease.dry_run = dry_run;
    if (!owner_safety_enabled(s))
        return OUTCOME_OK;
    struct kube_response resp;
    enum outcome o = target_get_pod(k, t, &resp, res); /* a replaced pod is skipped there */
    if (resp.status == 404) {
        *gone = true; /* already gone: the goal holds, the caller says so */
        res->reason[0] = 0;
        o = OUTCOME_OK;
    } else if (o == OUTCOME_OK) {
        o = check_owner(s, k, t, resp.json, hold, res);
    }
    kube_response_free(&resp);
    return o;
}

void owner_safety_release(struct kube *k, struct owner_hold *hold)
{
    lease_release(k, &hold->lease);
}

/* ---- the shell delete-pod and evict-pod share ------------------------------------------------------------ */

const struct param_spec pod_removal_params[] = {
    {.name = "grace_period_seconds",
     .type = PARAM_INT,
     .def = "-1",
     .offset = offsetof(struct pod_removal, grace_period_seconds),
     .min = -1,
     .max = 86400},
    OWNER_SAFETY_PARAMS(offsetof(struct pod_removal, safety)),
    {0},
};

int pod_removal_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct pod_removal *r = pb->ctx;
    return owner_safety_init(&r->safety, params, err);
}

enum outcome pod_removal_run(struct playbook *pb, const struct alert *a, pod_removal_act act, struct action_result *res)
{
    struct pod_removal *r = pb->ctx;
    struct target t;
    struct owner_hold hold;
    bool gone = false;
    enum outcome o = target_pod(a, pb->env, &t, res);
    if (o != OUTCOME_OK)
        return o;
    o = owner_safety_check(&r->safety, pb->env->kube, &t, pb->dry_run, &hold, &gone, res);
    if (o == OUTCOME_OK && !gone) /* gone: nothing left to remove, the goal holds */
        o = act(pb, a, &t, res);
    owner_safety_release(pb->env->kube, &hold);
    return o;
}

const struct rbac_rule *pod_removal_rbac_for(const struct playbook *pb)
{
    const struct pod_removal *r = pb->ctx;
    return owner_safety_rbac(&r->safety);
}

const char *pod_removal_rbac_namespace(const struct playbook *pb)
{
    const struct pod_removal *r = pb->ctx;
    return owner_safety_lock_namespace(&r->safety);
}
