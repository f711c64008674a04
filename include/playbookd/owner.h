/*
 * owner.h: delete and evict safety, shared by the pod playbooks: who controls the pod (its ownerReference
 * with controller: true; a ReplicaSet's own controller Deployment counts as the owner), and whether acting
 * on it is allowed by ignore_daemonsets, ignore_statefulsets, ignore_standalone_pods and
 * min_healthy_replicas ("N" or "N%" of the owner's desired replicas, rounded up), its healthy pods counted
 * from the API at check time. With min_healthy_replicas the check and the action after it hold a
 * cluster-wide Lease (lease.h) on the owner, one holder per acquisition, so that neither two workers nor two
 * replicas of playbookd each see the other's pod ready and both act. The module is owner.c (the options,
 * the check, the lock, and the shell delete-pod and evict-pod share) and owner_count.c (the count).
 */
#ifndef PLAYBOOKD_OWNER_H
#define PLAYBOOKD_OWNER_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/config.h"
#include "playbookd/error.h"
#include "playbookd/lease.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

#define OWNER_MIN_HEALTHY_MAX 100000 /* min_healthy_replicas: N at most this, or a percentage up to 100% */
#define OWNER_LIST_PAGE 100          /* objects per page when the owner's pods (and ReplicaSets) are listed */
#define OWNER_LIST_PAGES_MAX 50      /* pages per list; beyond them the check fails (transient), never guesses */

struct owner_safety {
    bool ignore_daemonsets, ignore_statefulsets, ignore_standalone_pods;
    char *min_healthy_text; /* as written; NULL: no replica check */
    long min_healthy;       /* parsed by owner_safety_init: replicas, or a percentage when percent */
    bool percent;
    char *lock_namespace; /* where the Leases live (a DNS-1123 label, checked by owner_safety_init) */
    long lock_wait_ms;    /* how long a live Lease of another holder is waited for before failing (transient) */
};

/* What one check holds until owner_safety_release: the caller's, on its stack (struct owner_safety is shared
 * by every worker running the playbook). */
struct owner_hold {
    struct lease lease;
};

/* The six entries of a playbook's parameter table, for a struct owner_safety at offset `at` in its context. */
#define OWNER_SAFETY_PARAMS(at)                                                                                        \
    {.name = "ignore_daemonsets",                                                                                      \
     .type = PARAM_BOOL,                                                                                               \
     .def = "false",                                                                                                   \
     .offset = (at) + offsetof(struct owner_safety, ignore_daemonsets)},                                               \
        {.name = "ignore_statefulsets",                                                                                \
         .type = PARAM_BOOL,                                                                                           \
         .def = "false",                                                                                               \
         .offset = (at) + offsetof(struct owner_safety, ignore_statefulsets)},                                         \
        {.name = "ignore_standalone_pods",                                                                             \
         .type = PARAM_BOOL,                                                                                           \
         .def = "false",                                                                                               \
         .offset = (at) + offsetof(struct owner_safety, ignore_standalone_pods)},                                      \
        {.name = "min_healthy_replicas",                                                                               \
         .type = PARAM_STRING,                                                                                         \
         .offset = (at) + offsetof(struct owner_safety, min_healthy_text)},                                            \
        {.name = "lock_namespace",                                                                                     \
         .type = PARAM_STRING,                                                                                         \
         .def = "playbookd",                                                                                           \
         .offset = (at) + offsetof(struct owner_safety, lock_namespace)},                                              \
    {                                                                                                                  \
        .name = "lock_wait", .type = PARAM_DURATION, .def = "10s", .min = 0, .max = LEASE_WAIT_MS_MAX,                 \
        .offset = (at) + offsetof(struct owner_safety, lock_wait_ms)                                                   \
    }

/* After params_load: parses min_healthy_replicas ("2", "50%") and checks lock_namespace; an error names the key
 * in params. */
int owner_safety_init(struct owner_safety *s, const struct config_node *params, struct error *err);

/* True when any option asks for a look at the pod's owner (so the pod is read first). */
bool owner_safety_enabled(const struct owner_safety *s);

/*
 * Reads the pod (and, for min_healthy_replicas, its owner) and decides: OUTCOME_OK to go ahead,
 * OUTCOME_SKIPPED with the reason and the numbers, OUTCOME_FAILED when a read failed. *gone is set when the
 * pod no longer exists (404): the caller's goal already holds. Nothing is read unless enabled.
 * With min_healthy_replicas, the check and the caller's action must not interleave with another's (two
 * workers, or two replicas of playbookd, deleting two pods of one Deployment would each see the other's pod
 * ready): once the owner is known, the check takes the owner's Lease (its own holder: nothing process-wide) in
 * lock_namespace (named playbookd-replicas-<owner uid>; waited for up to lock_wait, then failed as transient),
 * recorded in *hold; the caller calls owner_safety_release(k, hold) once it has acted, whatever the outcome.
 * dry_run: the Lease requests carry dryRun=All (no real lock: nothing is changed either).
 */
enum outcome owner_safety_check(const struct owner_safety *s, struct kube *k, const struct target *t, bool dry_run,
                                struct owner_hold *hold, bool *gone, struct action_result *res);
void owner_safety_release(struct kube *k, struct owner_hold *hold);

/* lock_namespace when min_healthy_replicas asks for Leases (for the Role there, rbac.c), else NULL. */
const char *owner_safety_lock_namespace(const struct owner_safety *s);

/*
 * The pod playbooks that remove a pod (delete-pod, evict-pod) share their context, parameters and run:
 * the alert's pod, the safety check, then `act` unless the pod is gone, then the lock released.
 */
struct pod_removal {
    long grace_period_seconds; /* -1: the pod's own terminationGracePeriodSeconds */
    struct owner_safety safety;
};
extern const struct param_spec pod_removal_params[];
typedef enum outcome (*pod_removal_act)(struct playbook *pb, const struct alert *a, const struct target *t,
                                        struct action_result *res);
int pod_removal_init(struct playbook *pb, const struct config_node *params, struct error *err);
enum outcome pod_removal_run(struct playbook *pb, const struct alert *a, pod_removal_act act,
                             struct action_result *res);
const struct rbac_rule *pod_removal_rbac_for(const struct playbook *pb);
const char *pod_removal_rbac_namespace(const struct playbook *pb);

/* The reads the options need (ended by a NULL resource), or NULL when none: for the ClusterRole; with
 * min_healthy_replicas also the Leases (namespaced: a Role in owner_safety_lock_namespace). */
const struct rbac_rule *owner_safety_rbac(const struct owner_safety *s);

struct cJSON;
struct kube;

/*
 * Inside the module (owner.c uses owner_count.c). The healthy pods of owner (an apps/v1 object as read; a
 * Deployment when deployment) in ns, other than the pod named except_pod, counted now from the API: its
 * pods (a Deployment's: those of the ReplicaSets it controls) that its selector selects, Ready and not
 * terminating (no metadata.deletionTimestamp). Pods and ReplicaSets are listed with the selector as
 * labelSelector, OWNER_LIST_PAGE at a time, at most OWNER_LIST_PAGES_MAX pages (else failed, transient).
 */
enum outcome owner_count_healthy(struct kube *k, const char *ns, const struct cJSON *owner, bool deployment,
                                 const char *except_pod, long *healthy, struct action_result *res);

#endif
