/*
 * target.h: what an alert is about, as GUIDE.md section 2 defines it: the pod (k8s.pod.name in
 * k8s.ns.name, uid from k8s.pod.uid), or, for a host event, the node named by the alert's hostname.
 * Names are attacker-influenced: they are checked here, before any request is built.
 */
#ifndef PLAYBOOKD_TARGET_H
#define PLAYBOOKD_TARGET_H

#include <stdbool.h>

#include "playbookd/alert.h"
#include "playbookd/playbook.h"

struct target {
    bool host;                  /* a host event: no pod, node is the alert's hostname */
    const char *ns, *pod, *uid; /* a pod event; uid may be NULL */
    const char *node;           /* a host event */
};

/*
 * The pod the alert is about, checked: a host event, an alert without a pod, an invalid name or a
 * protected namespace is OUTCOME_SKIPPED with the reason in res. OUTCOME_OK fills t and res->target.
 */
enum outcome target_pod(const struct alert *a, const struct playbook_env *env, struct target *t,
                        struct action_result *res);

/*
 * The pod, or for a host event the node named by the alert's hostname (checked as a node name). A host
 * event whose alert names a protected namespace (k8s.ns.name) is skipped: it is about a protected pod.
 */
enum outcome target_pod_or_host(const struct alert *a, const struct playbook_env *env, struct target *t,
                                struct action_result *res);

struct cJSON;
struct kube;
struct kube_response;

/*
 * GETs the pod t names (target_pod's). OUTCOME_OK with the Pod in resp->json; a pod that is gone (404), or
 * one whose uid is not the alert's k8s.pod.uid (replaced by a pod of the same name), is OUTCOME_SKIPPED;
 * other failures as playbook_kube_get words them. resp is the caller's to free either way.
 */
enum outcome target_get_pod(struct kube *k, const struct target *t, struct kube_response *resp,
                            struct action_result *res);

/*
 * The first of env's protected-node labels (label key present, any value) that the Node object, as the API
 * returns it, carries; NULL when it carries none. Node playbooks skip such a node.
 */
const char *target_node_protected(const struct playbook_env *env, const struct cJSON *node);

/* Set by cordon-node when it cordoned a node itself (never on a node someone else cordoned): only such a cordon
 * is playbookd's to undo. */
#define TARGET_CORDONED_BY "playbookd.io/cordoned-by"
#define TARGET_CORDONED_BY_VALUE "playbookd"

#define TARGET_NODE_MAX 254 /* a node name (DNS-1123 subdomain, at most 253) and its NUL */

/*
 * The node a node playbook acts on, as target_pod_or_host finds the alert's subject: for a host event the
 * node named by its hostname, else the node the pod runs on (spec.nodeName, read with a GET of the pod
 * whose uid must be the alert's when the alert has one). Copies it into node (TARGET_NODE_MAX bytes) and
 * sets res->target to "node NAME"; a pod gone, replaced or not scheduled is skipped.
 */
enum outcome target_node(const struct alert *a, const struct playbook_env *env, char node[TARGET_NODE_MAX],
                         struct action_result *res);

/*
 * GETs the node into resp (the caller frees it either way): OUTCOME_OK with the Node in resp->json, which has
 * a metadata.resourceVersion; a protected node (target_node_protected) is skipped, naming its label.
 */
enum outcome target_node_read(const struct playbook_env *env, const char *node, struct kube_response *resp,
                              struct action_result *res);

/*
 * PATCHes the node with a merge patch (body, taken) that carries the uid and resourceVersion of the node as
 * read (see kube_patch_metadata), and words the answer: the change (dry-run in dry run); a node gone is
 * skipped; a node that changed or was replaced since it was read fails transient, so the retry reads it
 * again; else the failure ("patch node: HTTP 403 ..."). `doing` says what in messages: "labelled".
 */
enum outcome target_node_patch(const struct playbook *pb, const char *node, char *body, const char *doing,
                               struct action_result *res);

/* What a node playbook does to the node it read (the Node as the API returns it); *wrote: the API server
 * accepted a change (dry run included). */
typedef enum outcome (*target_node_change)(struct playbook *pb, const char *node, const struct cJSON *read, bool *wrote,
                                           struct action_result *res);
/*
 * The run of a node playbook: the alert's node (target_node), read (target_node_read: protected nodes
 * skipped), handed to change, and the Event `action` recorded on the Node when it wrote.
 */
enum outcome target_node_act(struct playbook *pb, const struct alert *a, target_node_change change, const char *action,
                             struct action_result *res);
/* What every node playbook needs: GET the pod (its node, unless a host event names it), GET and PATCH the node. */
extern const struct rbac_rule target_node_rbac[];
/* True when the alert named no uid, or the Pod object, as the API returns it, has the alert's uid. */
bool target_uid_matches(const struct target *t, const struct cJSON *pod);

#endif
