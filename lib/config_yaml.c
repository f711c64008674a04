/*
 * config_yaml.c: reads YAML into a tree of config_node that remembers file, line and column of every value.
 * Guards for untrusted files: a size cap, a depth cap, no aliases (they can form cycles), one document,
 * duplicate keys rejected, no NUL (raw or escaped: C would cut the value there). ${VAR} in values expands from the
 * environment; an unset variable is an error.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "playbookd/config.h"

#define MAX_DEPTH 32
#define MAX_CHILDREN 10000

struct reader {
    yaml_parser_t parser;
    const char *file;
    bool expand_env;
    struct error *err;
};

static int node_error(struct error *err, const struct config_node *node, int line, int column, const char *fmt,
                      va_list ap)
{
    char reason[ERROR_MAX];
    vsnprintf(reason, sizeof(reason), fmt, ap);
    if (node == NULL)
        return error_set(err, "%s", reason);
    if (node->key != NULL)
        return error_set(err, "%s:%d:%d: key '%.64s': %s", node->file, line, column, node->key, reason);
    return error_set(err, "%s:%d:%d: %s", node->file, line, column, reason);
}

int config_node_error(struct error *err, const struct config_node *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    node_error(err, node, node ? node->line : 0, node ? node->column : 0, fmt, ap);
    va_end(ap);
    return -1;
}

int config_key_error(struct error *err, const struct config_node *node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool has_key = node != NULL && node->key != NULL;
    node_error(err, node,
               has_key ? node->key_line
               : node  ? node->line
                       : 0,
               has_key ? node->key_column
               : node  ? node->column
                       : 0,
               fmt, ap);
    va_end(ap);
    return -1;
}

const struct config_node *config_node_get(const struct config_node *map, const char *key)
{
    if (map == NULL || map->kind != NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n_children; i++)
        if (map->children[i].key != NULL && strcmp(map->children[i].key, key) == 0)
            return &map->children[i];
    return NULL;
}

static int mark_error(struct reader *r, const yaml_mark_t *mark, const char *reason)
{
    return error_set(r->err, "%s:%zu:%zu: %s", r->file, mark->line + 1, mark->column + 1, reason);
}

static int next_event(struct reader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->parser, ev))
        return 0;
    const char *problem = r->parser.problem ? r->parser.problem : "invalid YAML";
    return error_set(r->err, "%s:%zu:%zu: %s", r->file, r->parser.problem_mark.line + 1,
                     r->parser.problem_mark.column + 1, problem);
}

/* Appends ${VAR}'s value, or fails naming the variable. */
static int expand_var(struct reader *r, const yaml_mark_t *mark, const char **pp, char **out, size_t *len, size_t *cap)
{
    const char *p = *pp + 2, *end = strchr(p, '}');
    char name[128], reason[192];
    if (end == NULL || end == p || (size_t)(end - p) >= sizeof(name))
        return mark_error(r, mark, "malformed ${VAR} reference");
    memcpy(name, p, (size_t)(end - p));
    name[end - p] = 0;
    for (const char *c = name; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_'))
            return mark_error(r, mark, "malformed ${VAR} reference");
    const char *value = getenv(name);
    if (value == NULL) {
        snprintf(reason, sizeof(reason), "environment variable %s is not set", name);
        return mark_error(r, mark, reason);
    }
    size_t n = strlen(value);
    if (*len + n + 1 > *cap) {
        *cap = *len + n + 1;
        char *grown = realloc(*out, *cap);
        if (grown == NULL)
            return mark_error(r, mark, "out of memory");
        *out = grown;
    }
    memcpy(*out + *len, value, n);
    *len += n;
    *pp = end + 1;
    return 0;
}

/* The scalar's text with every ${VAR} replaced; malloc'd into *out. */
static int expand(struct reader *r, const yaml_event_t *ev, char **out)
{
    const char *p = (const char *)ev->data.scalar.value;
    size_t len = 0, cap = ev->data.scalar.length + 1;
    *out = malloc(cap);
    if (*out == NULL)
        return mark_error(r, &ev->start_mark, "out of memory");
    while (*p) {
        if (r->expand_env && p[0] == '$' && p[1] == '{') {
            if (expand_var(r, &ev->start_mark, &p, out, &len, &cap) != 0)
                return -1;
            continue;
        }
        if (len + 2 > cap) {
            cap *= 2;
            char *grown = realloc(*out, cap);
            if (grown == NULL)
                return mark_error(r, &ev->start_mark, "out of memory");
            *out = grown;
        }
        (*out)[len++] = *p++;
    }
    (*out)[len] = 0;
    return 0;
}

/* A "\0" escape would cut the value where C reads it: an error at the scalar, not a shorter value. */
static bool scalar_has_nul(struct reader *r, const yaml_event_t *ev)
{
    if (memchr(ev->data.scalar.value, 0, ev->data.scalar.length) == NULL)
        return false;
    mark_error(r, &ev->start_mark, "a NUL character is not allowed in a value");
    return true;
}

/* A raw NUL byte in the file: libyaml may take it for the end of the input and ignore what follows. */
static int find_nul_byte(const char *file, const char *text, size_t len, struct error *err)
{
    const char *nul = memchr(text, 0, len);
    if (nul == NULL)
        return 0;
    size_t line = 1, column = 1;
    for (const char *p = text; p < nul; p++, column++)
        if (*p == '\n')
            line++, column = 0;
    return error_set(err, "%s:%zu:%zu: a NUL byte is not allowed in the config", file, line, column);
}

static void node_free_children(struct config_node *n)
{
    for (size_t i = 0; i < n->n_children; i++) {
        node_free_children(&n->children[i]);
        free(n->children[i].key);
        free(n->children[i].value);
    }
    free(n->children);
    n->children = NULL;
    n->n_children = 0;
}

void config_tree_free(struct config_node *root)
{
    if (root == NULL)
        return;
    node_free_children(root);
    free(root->value);
    free(root);
}

static struct config_node *add_child(struct reader *r, struct config_node *parent, const yaml_mark_t *mark)
{
    if (parent->n_children >= MAX_CHILDREN) {
        mark_error(r, mark, "too many entries");
        return NULL;
    }
    struct config_node *grown = realloc(parent->children, (parent->n_children + 1) * sizeof(*grown));
    if (grown == NULL) {
        mark_error(r, mark, "out of memory");
        return NULL;
    }
    parent->children = grown;
    struct config_node *c = &grown[parent->n_children++];
    memset(c, 0, sizeof(*c));
    return c;
}

static int read_node(struct reader *r, yaml_event_t *ev, struct config_node *node, int depth);

/* A map entry: the key event ev, then its value. */
static int read_entry(struct reader *r, yaml_event_t *ev, struct config_node *map, struct config_node *child, int depth)
{
    char reason[160];
    if (ev->type != YAML_SCALAR_EVENT)
        return mark_error(r, &ev->start_mark, "a key must be a plain string");
    if (scalar_has_nul(r, ev))
        return -1;
    if (config_node_get(map, (const char *)ev->data.scalar.value) != NULL) {
        snprintf(reason, sizeof(reason), "duplicate key '%.64s'", ev->data.scalar.value);
        return mark_error(r, &ev->start_mark, reason);
    }
    child->key = strdup((const char *)ev->data.scalar.value);
    child->key_line = (int)ev->start_mark.line + 1;
    child->key_column = (int)ev->start_mark.column + 1;
    if (child->key == NULL)
        return mark_error(r, &ev->start_mark, "out of memory");
    yaml_event_t value;
    if (next_event(r, &value) != 0)
        return -1;
    int rc = read_node(r, &value, child, depth + 1);
    yaml_event_delete(&value);
    return rc;
}

static int read_children(struct reader *r, struct config_node *node, int depth, yaml_event_type_t end)
{
    yaml_event_t ev;
    for (;;) {
        if (next_event(r, &ev) != 0)
            return -1;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return 0;
        }
        struct config_node *child = add_child(r, node, &ev.start_mark);
        int rc = -1;
        if (child != NULL)
            rc = node->kind == NODE_MAP ? read_entry(r, &ev, node, child, depth) : read_node(r, &ev, child, depth + 1);
        yaml_event_delete(&ev);
        if (rc != 0)
            return -1;
    }
}

/* YAML 1.2's null: a plain (unquoted) scalar null, Null, NULL, ~ or nothing, untagged or tagged !!null; a
 * quoted "null" or a !!str one is a string. */
static bool scalar_is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *tag = (const char *)ev->data.scalar.tag;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || (tag != NULL && strcmp(tag, YAML_NULL_TAG) != 0))
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (strcmp((const char *)ev->data.scalar.value, nulls[i]) == 0)
            return true;
    return false;
}

/* Builds node from the event that starts it; the caller deletes that event. */
static int read_node(struct reader *r, yaml_event_t *ev, struct config_node *node, int depth)
{
    node->file = r->file;
    node->line = (int)ev->start_mark.line + 1;
    node->column = (int)ev->start_mark.column + 1;
    int rc;
    if (depth > MAX_DEPTH) {
        rc = mark_error(r, &ev->start_mark, "nested too deeply");
    } else if (ev->type == YAML_SCALAR_EVENT) {
        node->kind = NODE_SCALAR;
        node->is_null = scalar_is_null(ev);
        rc = scalar_has_nul(r, ev) ? -1 : expand(r, ev, &node->value);
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        node->kind = NODE_MAP;
        rc = read_children(r, node, depth, YAML_MAPPING_END_EVENT);
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        node->kind = NODE_SEQ;
        rc = read_children(r, node, depth, YAML_SEQUENCE_END_EVENT);
    } else if (ev->type == YAML_ALIAS_EVENT) {
        rc = mark_error(r, &ev->start_mark, "aliases are not supported");
    } else {
        rc = mark_error(r, &ev->start_mark, "unexpected YAML event");
    }
    return rc;
}

/* Skips to the first node of the single document, or fails on an empty stream. */
static int read_document(struct reader *r, struct config_node *root)
{
    yaml_event_t ev;
    int rc = -1;
    if (next_event(r, &ev) != 0)
        return -1; /* STREAM_START */
    yaml_event_delete(&ev);
    if (next_event(r, &ev) != 0)
        return -1;
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&ev);
        return error_set(r->err, "%s: the config is empty", r->file);
    }
    yaml_event_delete(&ev);
    if (next_event(r, &ev) != 0)
        return -1;
    rc = read_node(r, &ev, root, 0);
    yaml_event_delete(&ev);
    if (rc != 0)
        return -1;
    if (next_event(r, &ev) != 0) /* DOCUMENT_END */
        return -1;
    yaml_event_delete(&ev);
    if (next_event(r, &ev) != 0)
        return -1;
    if (ev.type != YAML_STREAM_END_EVENT)
        rc = mark_error(r, &ev.start_mark, "only one YAML document is allowed");
    yaml_event_delete(&ev);
    return rc;
}

int config_tree_read(struct config_node **out, const char *file, const char *text, size_t len, bool expand_env,
                     struct error *err)
{
    struct reader r = {.file = file, .expand_env = expand_env, .err = err};
    *out = NULL;
    if (len > CONFIG_MAX_BYTES)
        return error_set(err, "%s: larger than %d bytes", file, CONFIG_MAX_BYTES);
    if (find_nul_byte(file, text, len, err) != 0)
        return -1;
    struct config_node *root = calloc(1, sizeof(*root));
    if (root == NULL || !yaml_parser_initialize(&r.parser)) {
        free(root);
        return error_set(err, "%s: out of memory", file);
    }
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    int rc = read_document(&r, root);
    yaml_parser_delete(&r.parser);
    if (rc != 0) {
        config_tree_free(root);
        return -1;
    }
    *out = root;
    return 0;
}
