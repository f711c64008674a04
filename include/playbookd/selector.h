/*
 * selector.h: Kubernetes label selectors and the NetworkPolicies that use them, evaluated as the API
 * server and the network plugins do (k8s.io/apimachinery metav1.LabelSelectorAsSelector, the NetworkPolicy
 * defaulting of policyTypes). Pure functions over cJSON objects as the API answers them; nothing is sent.
 */
#ifndef PLAYBOOKD_SELECTOR_H
#define PLAYBOOKD_SELECTOR_H

#include <stddef.h>

struct cJSON;

enum selector_match {
    SELECTOR_NO,
    SELECTOR_YES,
    SELECTOR_INVALID, /* a selector the API server would refuse (unknown operator, In without values...) */
};

/*
 * Whether a metav1.LabelSelector selects a label set (a JSON object of strings; NULL: no labels). Every
 * matchLabels pair and every matchExpressions requirement must hold: In (the label is present with one of
 * the values), NotIn (absent, or present with none of them), Exists, DoesNotExist. A NULL or JSON null
 * selector selects nothing, as a nil *LabelSelector; an empty one ({}) selects everything.
 */
enum selector_match selector_matches(const struct cJSON *selector, const struct cJSON *labels);

enum selector_render {
    SELECTOR_RENDERED,
    SELECTOR_TOO_LONG,     /* valid, but longer than the room given */
    SELECTOR_UNRENDERABLE, /* invalid (as selector_matches says), nil, or a key or value that is not a label's */
};

/*
 * A metav1.LabelSelector as the labelSelector query of a list, in the syntax labels.Parse reads (unescaped:
 * "app=cart,tier in (a,b),track notin (canary),release,!legacy"), into out. It selects on the server what
 * selector_matches selects here. Keys must be qualified names and values label values (kube.h), as the API
 * server requires of a selector it stored; anything else is SELECTOR_UNRENDERABLE, so that no character
 * of the object's own reaches the query that could change its meaning. The empty selector renders as "".
 */
enum selector_render selector_render(const struct cJSON *selector, char *out, size_t size);

/*
 * Whether a NetworkPolicy selects a pod with these labels in the policy's namespace. spec.podSelector is
 * not a pointer in the Go type: absent or null it is the empty selector, which selects every pod.
 */
enum selector_match selector_policy_selects(const struct cJSON *policy, const struct cJSON *labels);

#define SELECTOR_INGRESS 1u
#define SELECTOR_EGRESS 2u

/*
 * The directions in which a NetworkPolicy allows some traffic to or from the pods it selects: a direction
 * it governs (spec.policyTypes; absent or empty: Ingress, plus Egress when spec.egress has a rule, as the
 * API server defaults it) that has at least one rule. Peers and ports are not evaluated: any rule allows
 * something (`ingress: [{}]` allows everything, a rule with a peer allows that peer), and policies are
 * additive, so one rule is enough to break an isolation. A governed direction without rules allows nothing.
 */
unsigned selector_policy_allows(const struct cJSON *policy);

#endif
