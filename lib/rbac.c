/*
 * rbac.c: the ClusterRole a config needs (see rbac.h): the rules of the playbook types its topics use,
 * plus Events when any of them calls the API, plus the expiry sweeper's when a playbook has expire_after, merged into
 * one rule per resource in a stable order; and for rules a playbook needs in one namespace only (capture-logs'
 * ConfigMaps, the Leases of min_healthy_replicas), a Role and RoleBinding there.
 */
#include "playbookd/rbac.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/playbook.h"
#include "playbookd/rules.h"

#define RBAC_MAX_GRANTS 64     /* distinct (group, resource, verb) triples: a handful today */
#define RBAC_MAX_NAMESPACES 16 /* distinct namespaces that namespaced rules name */

static const char *const verb_order[] = {"get",    "list",  "watch",  "create",
                                         "update", "patch", "delete", "deletecollection"};

/* Every playbook that calls the API records what it did as an Event (playbook_record_event). */
static const struct rbac_rule event_rules[] = {
    {.group = "events.k8s.io", .resource = "events", .verb = "create"},
    {0},
};

struct grants {
    const struct rbac_rule *rule[RBAC_MAX_GRANTS];
    size_t n;
};

static size_t verb_rank(const char *verb)
{
    size_t n = sizeof(verb_order) / sizeof(verb_order[0]);
    for (size_t i = 0; i < n; i++)
        if (strcmp(verb_order[i], verb) == 0)
            return i;
    return n; /* not a standard verb: after them, by name */
}

static int compare_rules(const void *pa, const void *pb)
{
    const struct rbac_rule *a = *(const struct rbac_rule *const *)pa, *b = *(const struct rbac_rule *const *)pb;
    int c = strcmp(a->group, b->group);
    if (c == 0)
        c = strcmp(a->resource, b->resource);
    if (c == 0) {
        size_t ra = verb_rank(a->verb), rb = verb_rank(b->verb);
        c = ra != rb ? (ra < rb ? -1 : 1) : strcmp(a->verb, b->verb);
    }
    return c;
}

/* Adds the rules that are (namespaced) or are not (!namespaced) granted in one namespace only. */
static int add_rules(struct grants *g, const struct rbac_rule *rules, bool namespaced, struct error *err)
{
    for (; rules != NULL && rules->resource != NULL; rules++) {
        bool seen = rules->namespaced != namespaced;
        for (size_t i = 0; i < g->n && !seen; i++)
            seen = compare_rules(&g->rule[i], &rules) == 0;
        if (seen)
            continue;
        if (g->n == RBAC_MAX_GRANTS)
            return error_set(err, "more than %d distinct permissions", RBAC_MAX_GRANTS);
        g->rule[g->n++] = rules;
    }
    return 0;
}

/* A name from the config in a YAML comment: anything but printable ASCII becomes '?' (no line breaks). */
static void put_name(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s >= 0x20 && *s < 0x7f ? *s : '?', out);
}

/* The used (and unused) playbooks as comments, so that a reader sees where the rules come from. */
static void put_header(FILE *out, const struct config *cfg, const bool *used)
{
    for (int pass = 0; pass < 2; pass++) {
        bool first = true;
        for (size_t i = 0; i < cfg->n_playbooks; i++) {
            if (used[i] != (pass == 0))
                continue;
            fputs(first ? (pass == 0 ? "# for the playbooks: " : "# not used by any topic or rule, so not included: ")
                        : ", ",
                  out);
            put_name(out, cfg->playbooks[i]->name);
            fprintf(out, " (%s)", cfg->playbooks[i]->type->name);
            first = false;
        }
        if (!first)
            fputc('\n', out);
    }
}

static void put_rules(FILE *out, const struct grants *g)
{
    fprintf(out, "rules:%s\n", g->n == 0 ? " []" : "");
    for (size_t i = 0; i < g->n; i++) {
        const struct rbac_rule *r = g->rule[i];
        bool first = i == 0 || strcmp(r->group, g->rule[i - 1]->group) != 0 ||
                     strcmp(r->resource, g->rule[i - 1]->resource) != 0;
        bool last = i + 1 == g->n || strcmp(r->group, g->rule[i + 1]->group) != 0 ||
                    strcmp(r->resource, g->rule[i + 1]->resource) != 0;
        if (first)
            fprintf(out, "  - apiGroups: [%s]\n    resources: [%s]\n    verbs: [", r->group[0] ? r->group : "\"\"",
                    r->resource);
        fprintf(out, "%s%s", first ? "" : ", ", r->verb);
        if (last)
            fputs("]\n", out);
    }
}

/* The grants of one namespace. */
struct role {
    const char *ns;
    struct grants g;
};

/* The role of namespace ns in roles[0..*n), added if new. */
static struct role *role_of(struct role *roles, size_t *n, const char *ns, struct error *err)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(roles[i].ns, ns) == 0)
            return &roles[i];
    if (*n == RBAC_MAX_NAMESPACES) {
        error_set(err, "namespaced permissions in more than %d namespaces", RBAC_MAX_NAMESPACES);
        return NULL;
    }
    roles[*n] = (struct role){.ns = ns};
    return &roles[(*n)++];
}

static int compare_roles(const void *pa, const void *pb)
{
    return strcmp(((const struct role *)pa)->ns, ((const struct role *)pb)->ns);
}

static bool any_namespaced(const struct rbac_rule *r)
{
    for (; r != NULL && r->resource != NULL; r++)
        if (r->namespaced)
            return true;
    return false;
}

/* Adds the namespaced rules of playbook pb (its type's and its parameters') to the role of its namespace. */
static int add_namespaced(struct role *roles, size_t *n, const struct playbook *pb, struct error *err)
{
    const struct rbac_rule *own = pb->type->rbac_for != NULL ? pb->type->rbac_for(pb) : NULL;
    bool any = any_namespaced(pb->type->rbac) || any_namespaced(own);
    const char *ns = any && pb->type->rbac_namespace != NULL ? pb->type->rbac_namespace(pb) : NULL;
    if (ns == NULL)
        return 0;
    struct role *role = role_of(roles, n, ns, err);
    if (role == NULL || add_rules(&role->g, pb->type->rbac, true, err) != 0)
        return -1;
    return add_rules(&role->g, own, true, err);
}

/* A Role in its namespace and the RoleBinding that gives it to playbookd's service account. */
static void put_role(FILE *out, struct role *role)
{
    qsort(role->g.rule, role->g.n, sizeof(role->g.rule[0]), compare_rules);
    fputs("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: " RBAC_ROLE_NAME
          "\n  namespace: ",
          out);
    put_name(out, role->ns);
    fputc('\n', out);
    put_rules(out, &role->g);
    fputs("---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: " RBAC_ROLE_NAME
          "\n  namespace: ",
          out);
    put_name(out, role->ns);
    fputs("\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: " RBAC_ROLE_NAME
          "\nsubjects:\n  - kind: ServiceAccount\n    name: " RBAC_SERVICE_ACCOUNT
          "\n    namespace: " RBAC_SERVICE_ACCOUNT_NAMESPACE "\n",
          out);
}

int rbac_print(FILE *out, const struct config *cfg, struct error *err)
{
    bool used[CONFIG_MAX_PLAYBOOKS] = {false}, kube = false;
    struct grants g = {.n = 0};
    struct role roles[RBAC_MAX_NAMESPACES];
    size_t n_roles = 0;
    for (size_t t = 0; t < cfg->n_rules; t++) /* the topics and the rules */
        for (size_t i = 0; i < cfg->rules[t].n_playbooks; i++)
            used[cfg->rules[t].playbooks[i]] = true;
    for (size_t i = 0; i < cfg->n_playbooks; i++) {
        const struct playbook *pb = cfg->playbooks[i];
        if (used[i] &&
            (add_rules(&g, pb->type->rbac, false, err) != 0 || add_namespaced(roles, &n_roles, pb, err) != 0))
            return -1;
        if (used[i] && pb->type->rbac_for != NULL && add_rules(&g, pb->type->rbac_for(pb), false, err) != 0)
            return -1;
        kube = kube || (used[i] && cfg->playbooks[i]->type->needs_kube);
    }
    if (kube && add_rules(&g, event_rules, false, err) != 0)
        return -1;
    if (expiry_configured(cfg) && add_rules(&g, expiry_rbac, false, err) != 0) /* the sweeper and --release */
        return -1;
    qsort(g.rule, g.n, sizeof(g.rule[0]), compare_rules);
    put_header(out, cfg, used);
    fputs("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: " RBAC_ROLE_NAME "\n", out);
    put_rules(out, &g);
    qsort(roles, n_roles, sizeof(roles[0]), compare_roles);
    for (size_t i = 0; i < n_roles; i++)
        put_role(out, &roles[i]);
    return ferror(out) ? error_set(err, "cannot write the ClusterRole") : 0;
}
