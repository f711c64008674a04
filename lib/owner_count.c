/*
 * owner_count.c: an owner's healthy pods, counted from the API at check time (owner.h), not taken from the
 * controller's status, which lags the pods. The pods of the namespace are listed (selected on the server by
 * the owner's selector, paged) and a pod counts when its controller is the owner (a Deployment: one of the
 * ReplicaSets it controls, listed the same way), every selector on the way selects it, it is Ready and it
 * is not terminating. Everything here comes from the API and is checked; every doubt counts a pod out,
 * never in: over-counting healthy pods is the unsafe direction.
 */
#include "playbookd/owner.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/log.h"
#include "playbookd/selector.h"

#define SELECTOR_QUERY_MAX 768 /* a labelSelector, escaped; a longer one is evaluated here only */
#define CONTINUE_MAX 1024      /* a list's continue token as received */
#define UID_MAX 64             /* metadata.uid is a UUID (36); a longer one is not believed */

/* The objects whose pods count: the owner itself, or a Deployment's ReplicaSets; each with its selector. */
struct controller {
    char uid[UID_MAX + 1];
    cJSON *selector; /* a copy of its spec.selector */
};

struct count {
    const cJSON *selector; /* the owner's spec.selector */
    const char *except;    /* the pod about to go: not counted among those that stay */
    struct controller *ctl;
    size_t n, cap;
    long healthy;
    bool oom;
};

/* One list item at a time, with the count being made. */
typedef void (*visit_fn)(struct count *c, const cJSON *item);

static const cJSON *meta_item(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), key);
}

static const char *meta_string(const cJSON *obj, const char *key)
{
    const cJSON *v = meta_item(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The uid of the object's controller (its ownerReference with controller: true), or NULL. */
static const char *controller_uid(const cJSON *obj)
{
    const cJSON *ref;
    cJSON_ArrayForEach (ref, meta_item(obj, "ownerReferences")) {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(ref, "uid");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
            return cJSON_IsString(uid) ? uid->valuestring : NULL;
    }
    return NULL;
}

static bool selects(const cJSON *selector, const cJSON *obj)
{
    return selector_matches(selector, meta_item(obj, "labels")) == SELECTOR_YES;
}

static bool ready(const cJSON *pod)
{
    const cJSON *c;
    cJSON_ArrayForEach (
        c, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "status"), "conditions")) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(c, "status");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "Ready") == 0)
            return cJSON_IsString(status) && strcmp(status->valuestring, "True") == 0;
    }
    return false;
}

/* Adds a controller (an object of uid with spec.selector); a uid too long is not believed: its pods never count. */
static void add_controller(struct count *c, const char *uid, const cJSON *obj)
{
    if (uid == NULL || strlen(uid) > UID_MAX)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        struct controller *more = realloc(c->ctl, cap * sizeof(*more));
        if (more == NULL) {
            c->oom = true;
            return;
        }
        c->ctl = more, c->cap = cap;
    }
    struct controller *ctl = &c->ctl[c->n];
    const cJSON *selector = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "selector");
    ctl->selector = selector != NULL ? cJSON_Duplicate(selector, true) : NULL;
    if (selector != NULL && ctl->selector == NULL) {
        c->oom = true;
        return;
    }
    snprintf(ctl->uid, sizeof(ctl->uid), "%s", uid);
    c->n++;
}

/* A ReplicaSet of the list: one of the Deployment's (c->ctl[0] until then holds the Deployment's uid). */
static void visit_replicaset(struct count *c, const cJSON *rs)
{
    const char *owner = controller_uid(rs);
    if (owner != NULL && strcmp(owner, c->ctl[0].uid) == 0 && selects(c->selector, rs))
        add_controller(c, meta_string(rs, "uid"), rs);
}

/* A pod of the list: counted when it stays, is healthy and one of the controllers (c->ctl[1..]) controls it. */
static void visit_pod(struct count *c, const cJSON *pod)
{
    const char *owner = controller_uid(pod), *name = meta_string(pod, "name");
    if (owner == NULL || name == NULL || strcmp(name, c->except) == 0 || meta_item(pod, "deletionTimestamp") != NULL ||
        !ready(pod) || !selects(c->selector, pod))
        return;
    for (size_t i = 1; i < c->n; i++)
        if (strcmp(owner, c->ctl[i].uid) == 0) {
            c->healthy += selects(c->ctl[i].selector, pod);
            return;
        }
}

/* One page of a list: its items visited, the next page's continue token into cont ("" after the last). */
static enum outcome list_page(struct kube *k, const char *path, const char *what, struct count *c, visit_fn visit,
                              char cont[CONTINUE_MAX], struct action_result *res)
{
    struct kube_response resp;
    const cJSON *item;
    enum outcome o = playbook_kube_get(k, path, what, &resp, res);
    if (resp.status == 410) /* the continue token expired (compaction): the retry lists from the start */
        o = action_fail(res, true, "%s: HTTP 410 (the list expired while paged)", what);
    const cJSON *items = o == OUTCOME_OK ? cJSON_GetObjectItemCaseSensitive(resp.json, "items") : NULL;
    cJSON_ArrayForEach (item, items)
        visit(c, item);
    const cJSON *next =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp.json, "metadata"), "continue");
    cont[0] = 0;
    if (o == OUTCOME_OK && cJSON_IsString(next) && strlen(next->valuestring) >= CONTINUE_MAX)
        o = action_fail(res, false, "%s: the list's continue token is longer than %d bytes", what, CONTINUE_MAX - 1);
    else if (o == OUTCOME_OK && cJSON_IsString(next))
        snprintf(cont, CONTINUE_MAX, "%s", next->valuestring);
    kube_response_free(&resp);
    return o;
}

/* Every page of base (".../pods") selected by query (escaped, "" for all), at most OWNER_LIST_PAGES_MAX. */
static enum outcome list_all(struct kube *k, const char *base, const char *query, const char *what, struct count *c,
                             visit_fn visit, struct action_result *res)
{
    char cont[CONTINUE_MAX] = "", escaped[3 * CONTINUE_MAX], path[KUBE_URL_MAX];
    for (int page = 0; page < OWNER_LIST_PAGES_MAX; page++) {
        if (kube_query_escape(escaped, sizeof(escaped), cont) != 0)
            return action_fail(res, false, "%s: the list's continue token cannot be escaped", what);
        int n = snprintf(path, sizeof(path), "%s?limit=%d%s%s%s%s", base, OWNER_LIST_PAGE,
                         query[0] ? "&labelSelector=" : "", query, cont[0] ? "&continue=" : "", escaped);
        if (n < 0 || (size_t)n >= sizeof(path))
            return action_fail(res, false, "%s: the list's URL would be longer than %zu bytes", what, sizeof(path));
        enum outcome o = list_page(k, path, what, c, visit, cont, res);
        if (o != OUTCOME_OK || c->oom)
            return o != OUTCOME_OK ? o : action_fail(res, true, "out of memory");
        if (cont[0] == 0)
            return OUTCOME_OK;
    }
    char objects[24];
    snprintf(objects, sizeof(objects), "%d", OWNER_LIST_PAGES_MAX * OWNER_LIST_PAGE);
    log_kv(LOG_WARN, "min_healthy_replicas: list cut: the replicas are not counted", "list", what, "objects_read",
           objects, NULL);
    return action_fail(res, true, "%s: more than %d pages of %d: the replicas are not counted", what,
                       OWNER_LIST_PAGES_MAX, OWNER_LIST_PAGE);
}

/* The owner's selector as an escaped labelSelector query into query ("" when it is evaluated here only). */
static enum outcome selector_query(const cJSON *selector, char query[SELECTOR_QUERY_MAX], struct action_result *res)
{
    char plain[SELECTOR_QUERY_MAX];
    query[0] = 0;
    switch (selector_render(selector, plain, sizeof(plain))) {
    case SELECTOR_UNRENDERABLE: return action_fail(res, false, "the pod's owner has no valid selector");
    case SELECTOR_TOO_LONG: return OUTCOME_OK; /* every pod of the namespace listed, selected here */
    case SELECTOR_RENDERED:
        if (kube_query_escape(query, SELECTOR_QUERY_MAX, plain) != 0)
            query[0] = 0; /* the same */
        break;
    }
    return OUTCOME_OK;
}

enum outcome owner_count_healthy(struct kube *k, const char *ns, const cJSON *owner, bool deployment,
                                 const char *except_pod, long *healthy, struct action_result *res)
{
    char query[SELECTOR_QUERY_MAX], base[160];
    struct count c = {.except = except_pod};
    c.selector = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(owner, "spec"), "selector");
    *healthy = 0;
    enum outcome o = selector_query(c.selector, query, res);
    if (o != OUTCOME_OK)
        goto out;
    add_controller(&c, meta_string(owner, "uid"), owner); /* ctl[0]: the owner */
    if (c.n == 0) {
        o = c.oom ? action_fail(res, true, "out of memory") : action_fail(res, false, "the pod's owner has no uid");
        goto out;
    }
    if (deployment) {
        snprintf(base, sizeof(base), "/apis/apps/v1/namespaces/%s/replicasets", ns);
        o = list_all(k, base, query, "list replicasets", &c, visit_replicaset, res);
    } else {
        add_controller(&c, c.ctl[0].uid, owner); /* its pods are its own */
        o = c.oom ? action_fail(res, true, "out of memory") : OUTCOME_OK;
    }
    if (o != OUTCOME_OK)
        goto out;
    snprintf(base, sizeof(base), "/api/v1/namespaces/%s/pods", ns);
    o = list_all(k, base, query, "list pods", &c, visit_pod, res);
    *healthy = c.healthy;
out:
    for (size_t i = 0; i < c.n; i++)
        cJSON_Delete(c.ctl[i].selector);
    free(c.ctl);
    return o;
}
