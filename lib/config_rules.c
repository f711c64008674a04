/*
 * config_rules.c: the `rules:` list of the config compiled into struct rule (rules.h), after the topics,
 * which become rules with only their subject pattern; then the NATS subscriptions: the union of every
 * subject pattern (a rule without subjects: falco.>), a pattern covered by another one dropped. Every
 * error names file:line:column.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/config.h"
#include "playbookd/rules.h"
#include "playbookd/subject.h"

#define ALL_SUBJECTS "falco.>"

/* A rule while it loads: the rule, and the nodes read after params_load. */
struct rule_load {
    struct rule r;
    bool cont;
    const struct config_node *tags, *fields, *playbooks;
};

#define R(f) offsetof(struct rule_load, r.f)

static const struct param_spec match_spec[] = {
    {.name = "subjects", .type = PARAM_STRINGS, .offset = R(subjects)},
    {.name = "priority", .type = PARAM_STRING, .offset = R(priority_text)},
    {.name = "rules", .type = PARAM_STRINGS, .offset = R(rules)},
    {.name = "tags", .type = PARAM_NODE, .offset = offsetof(struct rule_load, tags)},
    {.name = "source", .type = PARAM_STRING, .offset = R(source)},
    {.name = "output_fields", .type = PARAM_NODE, .offset = offsetof(struct rule_load, fields)},
    {0},
};

static const struct param_spec rule_spec[] = {
    {.name = "name", .type = PARAM_STRING, .required = true, .offset = R(name)},
    {.name = "match", .type = PARAM_SECTION, .section = match_spec},
    {.name = "playbooks", .type = PARAM_NODE, .offset = offsetof(struct rule_load, playbooks)},
    {.name = "continue", .type = PARAM_BOOL, .def = "true", .offset = offsetof(struct rule_load, cont)},
    {0},
};

static int add_string(struct string_list *l, const char *s)
{
    char **grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    l->items = grown;
    if ((l->items[l->n] = strdup(s)) == NULL)
        return -1;
    l->n++;
    return 0;
}

/* The node of a list's item i, for messages: the item when the list is a sequence, else the node. */
static const struct config_node *item_node(const struct config_node *list, size_t i)
{
    return list != NULL && list->kind == NODE_SEQ && i < list->n_children ? &list->children[i] : list;
}

static int check_name(const struct config *cfg, const struct config_node *def, const char *name, struct error *err)
{
    const struct config_node *at = config_node_get(def, "name");
    size_t n = strlen(name);
    if (n > RULE_NAME_MAX)
        return config_node_error(err, at, "a rule name is at most %d bytes", RULE_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return config_node_error(err, at, "a rule name has no control characters");
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (strcmp(cfg->rules[i].name, name) == 0)
            return config_node_error(err, at, "duplicate rule name \"%s\"%s", name,
                                     cfg->rules[i].is_topic ? " (a topic has this pattern)" : "");
    return 0;
}

/* subjects and rules: when present, not empty; each subject a valid pattern. */
static int check_lists(const struct rule *r, const struct config_node *match, struct error *err)
{
    static const char *const keys[] = {"subjects", "rules"};
    const struct string_list *lists[] = {&r->subjects, &r->rules};
    struct error why;
    for (size_t k = 0; k < 2; k++) {
        const struct config_node *n = config_node_get(match, keys[k]);
        if (n != NULL && lists[k]->n == 0)
            return config_node_error(err, n, "an empty list matches nothing: remove the key to match any");
    }
    const struct config_node *subjects = config_node_get(match, "subjects");
    for (size_t i = 0; i < r->subjects.n; i++)
        if (subject_pattern_check(r->subjects.items[i], &why) != 0)
            return config_node_error(err, item_node(subjects, i), "bad subject pattern: %s", why.msg);
    return 0;
}

static int check_priority(struct rule *r, const struct config_node *match, struct error *err)
{
    struct error why;
    r->op = RULE_OP_NONE;
    if (r->priority_text != NULL && rule_priority_parse(r->priority_text, &r->op, &r->priority, &why) != 0)
        return config_node_error(err, config_node_get(match, "priority"), "%s", why.msg);
    return 0;
}

#define TAGS_SHAPE "tags is a list of lists: [[a, b]] needs both tags, [[a], [b]] either one"

/* One inner list of tags: a sequence of non-empty strings. */
static int load_tag_list(struct string_list *out, const struct config_node *n, struct error *err)
{
    if (n->kind == NODE_SCALAR)
        return config_node_error(err, n, TAGS_SHAPE "; a flat list is not accepted (write [[%s]])", n->value);
    if (n->kind != NODE_SEQ || n->n_children == 0)
        return config_node_error(err, n, TAGS_SHAPE "; an inner list holds at least one tag");
    for (size_t i = 0; i < n->n_children; i++) {
        const struct config_node *t = &n->children[i];
        if (t->kind != NODE_SCALAR || *t->value == 0)
            return config_node_error(err, t, TAGS_SHAPE "; each tag is a non-empty string");
        if (add_string(out, t->value) != 0)
            return error_set(err, "out of memory");
    }
    return 0;
}

static int load_tags(struct rule *r, const struct config_node *n, struct error *err)
{
    if (n == NULL)
        return 0;
    if (n->kind != NODE_SEQ || n->n_children == 0)
        return config_node_error(err, n, TAGS_SHAPE);
    if ((r->tags = calloc(n->n_children, sizeof(*r->tags))) == NULL)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < n->n_children; i++, r->n_tags++)
        if (load_tag_list(&r->tags[i], &n->children[i], err) != 0)
            return -1;
    return 0;
}

/* One output_fields entry: `key: glob`, or `key!=: glob` to exclude. */
static int load_field(struct rule_field *f, const struct config_node *n, struct error *err)
{
    struct error why;
    size_t len = strlen(n->key);
    f->negate = len >= 2 && strcmp(n->key + len - 2, "!=") == 0;
    len -= f->negate ? 2 : 0;
    if (len == 0 || len > RULE_GLOB_MAX)
        return config_key_error(err, n, "an output field name is 1 to %d bytes (\"key\", or \"key!=\" to exclude)",
                                RULE_GLOB_MAX);
    if (n->kind != NODE_SCALAR)
        return config_node_error(err, n, "expected one value or glob (a string, number or boolean)");
    if (rule_glob_check(n->value, &why) != 0)
        return config_node_error(err, n, "%s", why.msg);
    f->key = strndup(n->key, len);
    f->glob = strdup(n->value);
    return f->key && f->glob ? 0 : error_set(err, "out of memory");
}

static int load_fields(struct rule *r, const struct config_node *n, struct error *err)
{
    if (n == NULL)
        return 0;
    if (n->kind != NODE_MAP || n->n_children == 0)
        return config_node_error(err, n, "output_fields is a map of field names to values or globs");
    if ((r->fields = calloc(n->n_children, sizeof(*r->fields))) == NULL)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < n->n_children; i++, r->n_fields++)
        if (load_field(&r->fields[i], &n->children[i], err) != 0)
            return -1;
    return 0;
}

static int load_playbooks(struct config *cfg, struct rule *r, const struct config_node *def,
                          const struct config_node *n, struct error *err)
{
    if (n == NULL)
        return config_node_error(err, def, "missing 'playbooks': the playbooks this rule runs");
    size_t count = n->kind == NODE_SEQ ? n->n_children : 1;
    if (n->kind == NODE_MAP || count == 0 || (n->kind == NODE_SCALAR && *n->value == 0))
        return config_node_error(err, n, "expected a list of playbooks");
    if ((r->playbooks = calloc(count, sizeof(*r->playbooks))) == NULL)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const struct config_node *ref = item_node(n, i);
        if (ref->kind != NODE_SCALAR)
            return config_node_error(err, ref, "expected a playbook name");
        int idx = config_playbook_ref(cfg, ref, err);
        if (idx < 0)
            return -1;
        r->playbooks[r->n_playbooks++] = (size_t)idx;
    }
    return 0;
}

/* One item of `rules:` into ld->r; on failure ld->r holds what was loaded, for rule_free. */
static int load_rule(struct config *cfg, struct rule_load *ld, const struct config_node *def, struct error *err)
{
    if (def->kind != NODE_MAP)
        return config_node_error(err, def, "a rule is a map: name, match, playbooks, continue");
    if (params_load(rule_spec, NULL, def, ld, err) != 0)
        return -1;
    const struct config_node *match = config_node_get(def, "match");
    if (check_name(cfg, def, ld->r.name, err) != 0 || check_lists(&ld->r, match, err) != 0 ||
        check_priority(&ld->r, match, err) != 0 || load_tags(&ld->r, ld->tags, err) != 0 ||
        load_fields(&ld->r, ld->fields, err) != 0 || load_playbooks(cfg, &ld->r, def, ld->playbooks, err) != 0)
        return -1;
    ld->r.stop = !ld->cont;
    return 0;
}

/* Each topic as a rule: its pattern is its name and its one subject. */
static int add_topics(struct config *cfg, struct error *err)
{
    for (size_t t = 0; t < cfg->n_topics; t++) {
        const struct topic *topic = &cfg->topics[t];
        struct rule *r = &cfg->rules[cfg->n_rules++];
        r->is_topic = true;
        r->name = strdup(topic->pattern);
        r->playbooks = calloc(topic->n_playbooks, sizeof(*r->playbooks));
        if (r->name == NULL || r->playbooks == NULL || add_string(&r->subjects, topic->pattern) != 0)
            return error_set(err, "out of memory");
        memcpy(r->playbooks, topic->playbooks, topic->n_playbooks * sizeof(*r->playbooks));
        r->n_playbooks = topic->n_playbooks;
    }
    return 0;
}

/* True when pattern i is dropped: another one covers it (of two equal ones, the first stays). */
static bool covered(const struct string_list *all, size_t i)
{
    for (size_t j = 0; j < all->n; j++) {
        if (j == i || !subject_matches(all->items[j], all->items[i]))
            continue;
        if (j < i || !subject_matches(all->items[i], all->items[j]))
            return true;
    }
    return false;
}

/*
 * The patterns to subscribe to. subject_matches reads a pattern as a subject whose tokens '*' and '>' are
 * literal, so it says whether one pattern covers another: falco.> covers falco.*.x, falco.*.* does not
 * cover falco.>.
 */
static int make_subscriptions(struct config *cfg, struct error *err)
{
    struct string_list all = {0};
    int rc = 0;
    for (size_t i = 0; i < cfg->n_rules && rc == 0; i++) {
        const struct rule *r = &cfg->rules[i];
        rc = r->subjects.n == 0 ? add_string(&all, ALL_SUBJECTS) : 0;
        for (size_t s = 0; s < r->subjects.n && rc == 0; s++)
            rc = add_string(&all, r->subjects.items[s]);
    }
    for (size_t i = 0; i < all.n && rc == 0; i++)
        if (!covered(&all, i))
            rc = add_string(&cfg->subscriptions, all.items[i]);
    string_list_free(&all);
    return rc == 0 ? 0 : error_set(err, "out of memory");
}

int config_rules_load(struct config *cfg, const struct config_node *list, struct error *err)
{
    size_t n = list != NULL && list->kind == NODE_SEQ ? list->n_children : 0;
    if (list != NULL && list->kind != NODE_SEQ)
        return config_node_error(err, list, "rules is a list of rules, each with name, match and playbooks");
    if (cfg->n_topics + n > CONFIG_MAX_RULES)
        return config_node_error(err, list, "too many topics and rules (limit %d)", CONFIG_MAX_RULES);
    if ((cfg->rules = calloc(cfg->n_topics + n + 1, sizeof(*cfg->rules))) == NULL || add_topics(cfg, err) != 0)
        return cfg->rules ? -1 : error_set(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct rule_load ld = {.cont = true};
        if (load_rule(cfg, &ld, &list->children[i], err) != 0) {
            rule_free(&ld.r);
            return -1;
        }
        cfg->rules[cfg->n_rules++] = ld.r;
    }
    return make_subscriptions(cfg, err);
}

void config_rules_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_rules; i++)
        rule_free(&cfg->rules[i]);
    free(cfg->rules);
    cfg->rules = NULL;
    cfg->n_rules = 0;
    string_list_free(&cfg->subscriptions);
}
