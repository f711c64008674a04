/*
 * rules.c: the match language (see rules.h). Criteria are checked cheapest first: subjects, priority,
 * Falco rule names, source, tags, output_fields; the first that fails decides. Nothing here allocates:
 * globs are matched in place and numbers and booleans rendered into stack buffers, as Falco prints them.
 */
#include "playbookd/rules.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/subject.h"
#include "playbookd/text.h"

static const struct {
    const char *text;
    enum rule_op op;
} ops[] = {
    /* two-character operators first */
    {"!=", RULE_OP_NE}, {"<=", RULE_OP_LE}, {">=", RULE_OP_GE}, {"=", RULE_OP_EQ}, {"<", RULE_OP_LT}, {">", RULE_OP_GT},
};

int rule_priority_parse(const char *text, enum rule_op *op, enum priority *p, struct error *err)
{
    const char *name = text;
    *op = RULE_OP_EQ;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        size_t n = strlen(ops[i].text);
        if (strncmp(text, ops[i].text, n) == 0) {
            *op = ops[i].op;
            name = text + n;
            break;
        }
    }
    name += strspn(name, " ");
    if (priority_parse(name, p) == 0)
        return 0;
    char shown[48];
    return error_set(err,
                     "bad priority comparison \"%s\": expected an optional =, !=, <, <=, >, >= and one of Emergency, "
                     "Alert, Critical, Error, Warning, Notice, Informational, Debug (such as \">=Warning\")",
                     text_escape(shown, sizeof(shown), text));
}

int rule_glob_check(const char *glob, struct error *err)
{
    if (strlen(glob) > RULE_GLOB_MAX)
        return error_set(err, "glob longer than %d bytes", RULE_GLOB_MAX);
    for (const char *g = glob; *g; g++) {
        if (*g != '\\')
            continue;
        if (g[1] != '*' && g[1] != '?' && g[1] != '\\')
            return error_set(err, "bad glob: '\\' escapes only '*', '?' or '\\' (at byte %td)", g - glob + 1);
        g++;
    }
    return 0;
}

/* The length of the UTF-8 character at s (1 for a stray byte): '?' matches a character, not a byte. */
static size_t char_len(const char *s)
{
    size_t n = 1;
    while (((unsigned char)s[n] & 0xc0) == 0x80)
        n++;
    return n;
}

/*
 * One star at a time: on a mismatch, go back to the last '*' and let it take one more character. Linear
 * in most cases, at worst glob length times text length; no recursion, no allocation.
 */
bool rule_glob_match(const char *glob, const char *text)
{
    const char *g = glob, *t = text, *star = NULL, *resume = NULL;
    while (*t) {
        if (*g == '*') {
            star = ++g;
            resume = t;
            continue;
        }
        const char *lit = *g == '\\' ? g + 1 : g;
        if (*g == '?' || (*lit != 0 && *lit == *t)) {
            size_t n = *g == '?' ? char_len(t) : 1;
            g = lit + 1;
            t += n;
            continue;
        }
        if (star == NULL)
            return false;
        g = star;
        resume += char_len(resume);
        t = resume;
    }
    while (*g == '*')
        g++;
    return *g == 0;
}

/* Writes the reason of a miss into why, when asked for; returns false (the rule does not match). */
static bool miss(char *why, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool miss(char *why, size_t size, const char *fmt, ...)
{
    if (why == NULL)
        return false;
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(why, size, fmt, ap) >= (int)size)
        text_utf8_trim(why); /* cut: on a character boundary */
    va_end(ap);
    return false;
}

/* "a", "b", "c" from a list, into buf, escaped (they come from the config; quoting keeps them apart). */
static const char *join(const struct string_list *l, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < l->n && n + 1 < size; i++) {
        char item[128];
        int w = snprintf(buf + n, size - n, "%s\"%s\"", i ? ", " : "", text_escape(item, sizeof(item), l->items[i]));
        n = w < 0 ? size : n + (size_t)w;
    }
    return buf;
}

static bool match_subjects(const struct rule *r, const char *subject, char *why, size_t size)
{
    for (size_t i = 0; i < r->subjects.n; i++)
        if (subject_matches(r->subjects.items[i], subject))
            return true;
    char list[256], shown[SUBJECT_MAX];
    return r->subjects.n == 0 ||
           miss(why, size, "subject \"%s\" matches none of %s", text_escape(shown, sizeof(shown), subject),
                join(&r->subjects, list, sizeof(list)));
}

/* Severity: higher is worse (Emergency 7, Debug 0). */
static int severity(enum priority p)
{
    return PRIORITY_DEBUG - (int)p;
}

static bool match_priority(const struct rule *r, const struct alert *a, char *why, size_t size)
{
    int d = severity(a->priority) - severity(r->priority);
    bool ok = true;
    switch (r->op) {
    case RULE_OP_NONE: break;
    case RULE_OP_EQ: ok = d == 0; break;
    case RULE_OP_NE: ok = d != 0; break;
    case RULE_OP_LT: ok = d < 0; break;
    case RULE_OP_LE: ok = d <= 0; break;
    case RULE_OP_GT: ok = d > 0; break;
    case RULE_OP_GE: ok = d >= 0; break;
    }
    return ok || miss(why, size, "priority %s is not %s", priority_name(a->priority), r->priority_text);
}

static bool match_rules(const struct rule *r, const struct alert *a, char *why, size_t size)
{
    for (size_t i = 0; i < r->rules.n; i++)
        if (strcmp(r->rules.items[i], a->rule) == 0)
            return true;
    char list[256], shown[160];
    return r->rules.n == 0 || miss(why, size, "rule \"%s\" is none of %s", text_escape(shown, sizeof(shown), a->rule),
                                   join(&r->rules, list, sizeof(list)));
}

static bool match_source(const struct rule *r, const struct alert *a, char *why, size_t size)
{
    char shown[96];
    if (r->source == NULL || (*a->source && strcmp(r->source, a->source) == 0))
        return true;
    if (*a->source == 0)
        return miss(why, size, "source is missing, not \"%s\"", r->source);
    return miss(why, size, "source is \"%s\", not \"%s\"", text_escape(shown, sizeof(shown), a->source), r->source);
}

/* True when the alert carries tag (among its first RULE_TAGS_SCANNED). */
static bool has_tag(const struct alert *a, const char *tag)
{
    int i = 0;
    for (const cJSON *t = a->tags ? a->tags->child : NULL; t != NULL && i < RULE_TAGS_SCANNED; t = t->next, i++)
        if (cJSON_IsString(t) && strcmp(t->valuestring, tag) == 0)
            return true;
    return false;
}

static bool has_all_tags(const struct alert *a, const struct string_list *all)
{
    for (size_t i = 0; i < all->n; i++)
        if (!has_tag(a, all->items[i]))
            return false;
    return true;
}

/* The alert's tags as "a", "b" into buf, escaped. */
static const char *alert_tags(const struct alert *a, char *buf, size_t size)
{
    size_t n = 0;
    int i = 0;
    buf[0] = 0;
    for (const cJSON *t = a->tags ? a->tags->child : NULL; t && i < RULE_TAGS_SCANNED && n + 1 < size; t = t->next) {
        char item[64];
        if (!cJSON_IsString(t))
            continue;
        int w =
            snprintf(buf + n, size - n, "%s\"%s\"", i++ ? ", " : "", text_escape(item, sizeof(item), t->valuestring));
        n = w < 0 ? size : n + (size_t)w;
    }
    return buf;
}

static bool match_tags(const struct rule *r, const struct alert *a, char *why, size_t size)
{
    for (size_t i = 0; i < r->n_tags; i++)
        if (has_all_tags(a, &r->tags[i]))
            return true;
    char first[256], had[256];
    if (r->n_tags == 0)
        return true;
    return miss(why, size, "tags: no list is all in the alert's tags [%s] (%s[%s])", alert_tags(a, had, sizeof(had)),
                r->n_tags > 1 ? "the first list: " : "", join(&r->tags[0], first, sizeof(first)));
}

/* The JSON kind of a field that has no text: "missing", "null", "an object", "an array". */
static const char *no_text(const struct alert *a, const char *key)
{
    const cJSON *v = a->fields ? cJSON_GetObjectItemCaseSensitive(a->fields, key) : NULL;
    return v == NULL ? "missing" : cJSON_IsNull(v) ? "null" : cJSON_IsArray(v) ? "an array" : "an object";
}

static bool match_field(const struct rule_field *f, const struct alert *a, char *why, size_t size)
{
    char buf[64], shown[160], key[96], glob[160];
    const char *v = alert_field(a, f->key, buf, sizeof(buf));
    bool hit = v != NULL && rule_glob_match(f->glob, v);
    if (hit != f->negate)
        return true;
    if (why == NULL)
        return false;
    text_escape(key, sizeof(key), f->key);
    text_escape(glob, sizeof(glob), f->glob);
    if (v == NULL)
        return miss(why, size, "output_fields %s is %s, not \"%s\"", key, no_text(a, f->key), glob);
    text_escape(shown, sizeof(shown), v);
    if (f->negate)
        return miss(why, size, "output_fields %s is \"%s\", excluded by %s!=: \"%s\"", key, shown, key, glob);
    return miss(why, size, "output_fields %s is \"%s\", not \"%s\"", key, shown, glob);
}

static bool match_fields(const struct rule *r, const struct alert *a, char *why, size_t size)
{
    for (size_t i = 0; i < r->n_fields; i++)
        if (!match_field(&r->fields[i], a, why, size))
            return false;
    return true;
}

bool rule_match(const struct rule *r, const struct alert *a, const char *subject, char *why, size_t why_size)
{
    return match_subjects(r, subject, why, why_size) && match_priority(r, a, why, why_size) &&
           match_rules(r, a, why, why_size) && match_source(r, a, why, why_size) && match_tags(r, a, why, why_size) &&
           match_fields(r, a, why, why_size);
}

void rule_free(struct rule *r)
{
    free(r->name);
    string_list_free(&r->subjects);
    free(r->priority_text);
    string_list_free(&r->rules);
    for (size_t i = 0; i < r->n_tags; i++)
        string_list_free(&r->tags[i]);
    free(r->tags);
    free(r->source);
    for (size_t i = 0; i < r->n_fields; i++) {
        free(r->fields[i].key);
        free(r->fields[i].glob);
    }
    free(r->fields);
    free(r->playbooks);
    memset(r, 0, sizeof(*r));
}
