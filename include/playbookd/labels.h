/*
 * labels.h: label changes as playbooks configure them (`labels: {key: value}`, a null value removing the
 * key), checked at load as the API server checks labels, and the merge patches that apply them: to a pod,
 * guarded by the alert's uid, or as part of a node's patch.
 */
#ifndef PLAYBOOKD_LABELS_H
#define PLAYBOOKD_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/config.h"
#include "playbookd/error.h"
#include "playbookd/playbook.h"
#include "playbookd/target.h"

struct cJSON;
struct expiry_mark;
struct expiry_write;

#define LABELS_MAX 64 /* changes in one playbook's `labels:` */

struct label_change {
    char *key;   /* a qualified name: [DNS-1123 subdomain prefix/]name, the name 1-63 of [A-Za-z0-9-_.] */
    char *value; /* empty, or 1-63 of [A-Za-z0-9-_.] alphanumeric at both ends; NULL: remove the key */
};

struct label_set {
    struct label_change *items;
    size_t n;
};

/*
 * Loads the map `node` (the `labels` parameter; NULL: absent) of `params` (for the message when it is
 * absent; may be NULL) into set: at least one and at most LABELS_MAX labels, each key and value checked,
 * a YAML null (null, ~ or nothing) removing the key. Errors name file:line:column. label_set_free frees
 * it, also after a failed load.
 */
int label_set_load(struct label_set *set, const struct config_node *params, const struct config_node *node,
                   struct error *err);
void label_set_free(struct label_set *set);

/* True when the labels (an object's metadata.labels, possibly NULL) already are as the set asks. */
bool label_set_applied(const struct label_set *set, const struct cJSON *labels);

/*
 * The merge patch {"metadata": {"uid": ..., "resourceVersion": ..., "labels": {key: value or null}}} as
 * JSON (uid and resource_version when not NULL; see kube_patch_metadata), with playbookd's expiry marks w
 * when not NULL (expiry.h), or NULL when out of memory.
 */
char *label_patch(const struct label_change *items, size_t n, const char *uid, const char *resource_version,
                  const struct expiry_write *w);

/* The expiry marks of the changes (those that set a value: a removed label cannot be put back), into marks
 * (LABELS_MAX of them); returns how many. */
size_t label_marks(const struct label_change *items, size_t n, struct expiry_mark *marks);

/*
 * Applies the changes to the pod t with label_patch and t's uid (when known), one PATCH; when pb has
 * expire_after, the pod is read first (target_get_pod) and the patch also carries its resourceVersion and
 * playbookd's marks (a pod that changed in between fails transient: the retry reads it again). OUTCOME_OK when
 * the API server accepted it (in dry run too); *pod, when pod is not NULL, is the pod as answered, for the
 * caller to cJSON_Delete. A pod gone or replaced (its uid not the alert's) is skipped; else failed.
 */
enum outcome label_pod_patch(const struct playbook *pb, const struct target *t, const struct label_change *items,
                             size_t n, struct cJSON **pod, struct action_result *res);

/* The context of a playbook whose only parameter is `labels` (label-pod, label-node): its table, init and
 * destroy, shared. */
struct labels_ctx {
    const struct config_node *node; /* declares the parameter; labels_init reads it from the map */
    struct label_set set;
};
extern const struct param_spec labels_params[];
int labels_init(struct playbook *pb, const struct config_node *params, struct error *err);
void labels_destroy(struct playbook *pb);

#endif
