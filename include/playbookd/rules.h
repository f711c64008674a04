/*
 * rules.h: the match language. A rule says when its playbooks run: NATS subject patterns, a priority
 * comparison by severity, Falco rule names, tags, source and output_fields globs; every criterion present
 * must hold. Matching is pure and allocation-free (globs matched in place, field values rendered into
 * stack buffers), so it runs on the receiving thread once per alert. A `topics:` entry is a rule with only
 * a subject pattern. The config module compiles rules from YAML with the checks below.
 */
#ifndef PLAYBOOKD_RULES_H
#define PLAYBOOKD_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/error.h"

#define RULE_NAME_MAX 128    /* bytes of a rule's name */
#define RULE_GLOB_MAX 1024   /* bytes of one output_fields glob or key */
#define RULE_TAGS_SCANNED 64 /* tags of an alert looked at, at most (Falco's rules carry a handful) */
#define RULE_WHY_MAX 768     /* the explanation of a miss */

/* A priority comparison by severity: Emergency is the most severe, Debug the least. */
enum rule_op { RULE_OP_NONE, RULE_OP_EQ, RULE_OP_NE, RULE_OP_LT, RULE_OP_LE, RULE_OP_GT, RULE_OP_GE };

/* One output_fields criterion: the field's value matches glob (or, negated, is missing, null or does not). */
struct rule_field {
    char *key;
    char *glob;
    bool negate;
};

struct rule {
    char *name;                  /* a topic's is its pattern */
    bool is_topic;               /* from `topics:` */
    struct string_list subjects; /* NATS patterns, any of; none: every subject */
    char *priority_text;         /* as written, e.g. ">=Warning"; NULL: any priority */
    enum rule_op op;
    enum priority priority;
    struct string_list rules; /* exact Falco rule names, any of; none: any rule */
    struct string_list *tags; /* any of these lists, all tags of one list */
    size_t n_tags;
    char *source; /* exact; NULL: any source */
    struct rule_field *fields;
    size_t n_fields;
    size_t *playbooks; /* indices into config.playbooks, in the order to run */
    size_t n_playbooks;
    bool stop; /* continue: false: when it matches, later rules are not evaluated */
};

/* Parses "[op]Priority" (op one of =, !=, <, <=, >, >=; none means =; spaces after op allowed). 0 or -1. */
int rule_priority_parse(const char *text, enum rule_op *op, enum priority *p, struct error *err);

/* Checks a glob: '*' any run, '?' one character, '\' escapes the next '*', '?' or '\'. 0 or -1. */
int rule_glob_check(const char *glob, struct error *err);
/* Matches text against a checked glob, in place, without recursion. */
bool rule_glob_match(const char *glob, const char *text);

/*
 * True when the alert (its subject given) meets every criterion of r. When why is not NULL and r does
 * not match, it receives the first criterion that failed and why, alert values escaped ("output_fields
 * k8s.ns.name is \"default\", not \"prod-*\""); the hot path passes NULL.
 */
bool rule_match(const struct rule *r, const struct alert *a, const char *subject, char *why, size_t why_size);

/* Frees what r holds (not r itself). */
void rule_free(struct rule *r);

#endif
