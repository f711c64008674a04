/*
 * rbac.c: the ClusterRole a config needs (see rbac.h): the rules of the playbook types its topics use,
 * plus Events when any of them calls the API, merged into one rule per resource in a stable order.
 */
#include "playbookd/rbac.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/playbook.h"
#include "playbookd/rules.h"

#define RBAC_MAX_GRANTS 64 /* distinct (group, resource, verb) triples: a handful today */

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

static int add_rules(struct grants *g, const struct rbac_rule *rules, struct error *err)
{
    for (; rules != NULL && rules->resource != NULL; rules++) {
        bool seen = false;
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

int rbac_print(FILE *out, const struct config *cfg, struct error *err)
{
    bool used[CONFIG_MAX_PLAYBOOKS] = {false}, kube = false;
    struct grants g = {.n = 0};
    for (size_t t = 0; t < cfg->n_rules; t++) /* the topics and the rules */
        for (size_t i = 0; i < cfg->rules[t].n_playbooks; i++)
            used[cfg->rules[t].playbooks[i]] = true;
    for (size_t i = 0; i < cfg->n_playbooks; i++) {
        if (used[i] && add_rules(&g, cfg->playbooks[i]->type->rbac, err) != 0)
            return -1;
        kube = kube || (used[i] && cfg->playbooks[i]->type->needs_kube);
    }
    if (kube && add_rules(&g, event_rules, err) != 0)
        return -1;
    qsort(g.rule, g.n, sizeof(g.rule[0]), compare_rules);
    put_header(out, cfg, used);
    fputs("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: " RBAC_ROLE_NAME "\n", out);
    put_rules(out, &g);
    return ferror(out) ? error_set(err, "cannot write the ClusterRole") : 0;
}
