/*
 * config_params.c: loads a map of the config into a C struct by a table of parameters (name, type,
 * default, bounds, where it goes), so each playbook and each section declares its keys once.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"

#define FIELD(ctx, spec, type) ((type *)(void *)((char *)(ctx) + (spec)->offset))

static const struct param_spec *spec_find(const struct param_spec *spec, const char *name)
{
    for (; spec->name != NULL; spec++)
        if (strcmp(spec->name, name) == 0)
            return spec;
    return NULL;
}

static void spec_names(const struct param_spec *spec, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = 0;
    for (; spec->name != NULL && n < size; spec++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", spec->name);
}

static int check_keys(const struct param_spec *spec, const char *type, const struct config_node *map, struct error *err)
{
    if (map->kind != NODE_MAP)
        return config_node_error(err, map, "expected a map of settings");
    for (size_t i = 0; i < map->n_children; i++) {
        const struct config_node *c = &map->children[i];
        if (type != NULL && strcmp(c->key, "type") == 0)
            continue;
        if (spec_find(spec, c->key) == NULL) {
            char valid[256];
            spec_names(spec, valid, sizeof(valid));
            if (type != NULL)
                return config_key_error(err, c, "unknown parameter for playbook type %s (valid: %s)", type,
                                        valid[0] ? valid : "none");
            return config_key_error(err, c, "unknown key (valid: %s)", valid);
        }
    }
    return 0;
}

static int load_string(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                       struct error *err)
{
    if (s->type == PARAM_CHOICE) {
        const char *const *c = s->choices;
        while (*c != NULL && strcmp(*c, text) != 0)
            c++;
        if (*c == NULL) {
            char valid[256];
            size_t len = 0;
            valid[0] = 0;
            for (c = s->choices; *c != NULL && len < sizeof(valid); c++)
                len += (size_t)snprintf(valid + len, sizeof(valid) - len, "%s%s", len ? ", " : "", *c);
            return config_node_error(err, n, "must be one of: %s", valid);
        }
    }
    if (*text == 0 && s->type == PARAM_STRING)
        return 0; /* empty counts as absent */
    char **field = FIELD(ctx, s, char *);
    free(*field);
    *field = strdup(text);
    return *field ? 0 : config_node_error(err, n, "out of memory");
}

static int load_int(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                    struct error *err)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == 0 || *end != 0 || errno != 0)
        return config_node_error(err, n, "expected an integer");
    if (v < s->min || v > s->max)
        return config_node_error(err, n, "must be between %ld and %ld", s->min, s->max);
    *FIELD(ctx, s, long) = v;
    return 0;
}

/* Reads the decimal digits at *p into *v (at least one); -1 when there are none, -2 past LONG_MAX. */
static int read_digits(const char **p, long *v)
{
    const char *s = *p;
    long n = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (n > (LONG_MAX - (*s - '0')) / 10)
            return -2;
        n = n * 10 + (*s - '0');
    }
    *p = s;
    *v = n;
    return 0;
}

/* *total += v * unit, or -2 when that passes LONG_MAX (v, unit and *total are not negative). */
static int add_scaled(long *total, long v, long unit)
{
    if (v > (LONG_MAX - *total) / unit)
        return -2;
    *total += v * unit;
    return 0;
}

struct unit {
    const char *name;
    long scale;
};

/* Largest first: each piece of a duration uses a smaller unit than the one before it. */
static const struct unit duration_units[] = {
    {"h", 3600000L}, {"m", 60000L}, {"s", 1000L}, {"ms", 1L}, {NULL, 0},
};

static const struct unit size_units[] = {
    {"GiB", 1L << 30}, {"MiB", 1L << 20}, {"KiB", 1L << 10}, {"B", 1L}, {NULL, 0},
};

/* The index of the unit that text starts with, taking the longest match ("ms" over "m"); -1 for none. */
static int unit_at(const struct unit *units, const char *text, size_t *len)
{
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; units[i].name != NULL; i++) {
        size_t n = strlen(units[i].name);
        if (n > best_len && strncmp(text, units[i].name, n) == 0) {
            best = i;
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

int config_parse_duration(const char *text, long *ms)
{
    long total = 0, v;
    int last = -1, rc;
    const char *p = text;
    do {
        if ((rc = read_digits(&p, &v)) != 0)
            return rc;
        size_t len;
        int u = unit_at(duration_units, p, &len);
        if (u <= last) /* no unit, or not smaller than the previous piece's */
            return -1;
        if ((rc = add_scaled(&total, v, duration_units[u].scale)) != 0)
            return rc;
        last = u;
        p += len;
    } while (*p != 0);
    *ms = total;
    return 0;
}

int config_parse_size(const char *text, long *bytes)
{
    long v, total = 0;
    const char *p = text;
    int rc = read_digits(&p, &v);
    if (rc != 0)
        return rc;
    size_t len = 0;
    int u = *p == 0 ? -1 : unit_at(size_units, p, &len);
    if ((*p != 0 && u < 0) || p[len] != 0)
        return -1;
    if ((rc = add_scaled(&total, v, u < 0 ? 1 : size_units[u].scale)) != 0)
        return rc;
    *bytes = total;
    return 0;
}

/*
 * Writes v (not negative) with units, largest first: as pieces ("1h30m", "1s500ms", "0ms"), or as_one: in the
 * largest unit that divides it ("16MiB", "1536B"). The last unit of the table is 1.
 */
static void format_units(char *buf, size_t size, long v, const struct unit *units, bool as_one)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; units[i].name != NULL && n < size; i++) {
        bool last = units[i + 1].name == NULL;
        if (as_one && v % units[i].scale != 0 && !last)
            continue;
        if (v >= units[i].scale || (last && n == 0)) {
            n += (size_t)snprintf(buf + n, size - n, "%ld%s", v / units[i].scale, units[i].name);
            v %= units[i].scale;
        }
        if (v == 0 && n > 0)
            break;
    }
}

static int load_measure(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                        struct error *err)
{
    bool duration = s->type == PARAM_DURATION;
    const struct unit *units = duration ? duration_units : size_units;
    long v;
    int rc = duration ? config_parse_duration(text, &v) : config_parse_size(text, &v);
    if (rc == -1 && duration)
        return config_node_error(err, n, "expected a duration such as 500ms, 30s, 1m, 24h or 1h30m");
    if (rc == -1)
        return config_node_error(err, n,
                                 "expected a size such as 100B, 512KiB, 16MiB, 1GiB or a number of bytes "
                                 "(binary units only: KB, MB and GB are not accepted)");
    if (rc != 0 || v < s->min || v > s->max) {
        char lo[48], hi[48];
        format_units(lo, sizeof(lo), s->min, units, !duration);
        format_units(hi, sizeof(hi), s->max, units, !duration);
        return config_node_error(err, n, "must be between %s and %s", lo, hi);
    }
    *FIELD(ctx, s, long) = v;
    return 0;
}

static int load_bool(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                     struct error *err)
{
    bool *field = FIELD(ctx, s, bool);
    if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0)
        *field = true;
    else if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0)
        *field = false;
    else
        return config_node_error(err, n, "expected true or false");
    return 0;
}

static int load_priority(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                         struct error *err)
{
    if (priority_parse(text, FIELD(ctx, s, enum priority)) != 0)
        return config_node_error(err, n,
                                 "unknown priority (valid: Emergency, Alert, Critical, Error, Warning, Notice, "
                                 "Informational, Debug)");
    return 0;
}

static int list_add(struct string_list *list, const char *text)
{
    char **grown = realloc(list->items, (list->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    list->items = grown;
    list->items[list->n] = strdup(text);
    return list->items[list->n++] ? 0 : -1;
}

void string_list_free(struct string_list *list)
{
    for (size_t i = 0; i < list->n; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

/* A sequence of strings or a single one from the node, or the comma-separated default. */
static int load_strings(const struct param_spec *s, const struct config_node *n, void *ctx, struct error *err)
{
    struct string_list *list = FIELD(ctx, s, struct string_list);
    string_list_free(list);
    if (n == NULL) {
        char *copy = strdup(s->def ? s->def : ""), *save = NULL;
        int rc = copy ? 0 : -1;
        for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            rc = list_add(list, t);
        free(copy);
        return rc == 0 ? 0 : error_set(err, "out of memory");
    }
    if (n->kind == NODE_SCALAR)
        return list_add(list, n->value) == 0 ? 0 : config_node_error(err, n, "out of memory");
    if (n->kind != NODE_SEQ)
        return config_node_error(err, n, "expected a list of strings");
    for (size_t i = 0; i < n->n_children; i++) {
        if (n->children[i].kind != NODE_SCALAR)
            return config_node_error(err, &n->children[i], "expected a string in the list '%s'", s->name);
        if (list_add(list, n->children[i].value) != 0)
            return config_node_error(err, n, "out of memory");
    }
    return 0;
}

static int load_scalar(const struct param_spec *s, const struct config_node *n, const char *text, void *ctx,
                       struct error *err)
{
    switch (s->type) {
    case PARAM_STRING:
    case PARAM_CHOICE: return load_string(s, n, text, ctx, err);
    case PARAM_INT: return load_int(s, n, text, ctx, err);
    case PARAM_BOOL: return load_bool(s, n, text, ctx, err);
    case PARAM_PRIORITY: return load_priority(s, n, text, ctx, err);
    case PARAM_DURATION:
    case PARAM_SIZE: return load_measure(s, n, text, ctx, err);
    default: return config_node_error(err, n, "internal error: not a scalar parameter");
    }
}

static int load_one(const struct param_spec *s, const struct config_node *map, const struct config_node *n, void *ctx,
                    struct error *err)
{
    switch (s->type) {
    case PARAM_SECTION: return params_load(s->section, NULL, n, ctx, err);
    case PARAM_STRINGS: return load_strings(s, n, ctx, err);
    case PARAM_NODE: *FIELD(ctx, s, const struct config_node *) = n; return 0;
    default: break;
    }
    if (n == NULL && s->required) {
        if (map == NULL)
            return error_set(err, "missing required parameter '%s'", s->name);
        return config_node_error(err, map, "missing required parameter '%s'", s->name);
    }
    if (n == NULL)
        return s->def ? load_scalar(s, map, s->def, ctx, err) : 0;
    if (n->kind != NODE_SCALAR)
        return config_node_error(err, n, "expected a single value, not a %s", n->kind == NODE_MAP ? "map" : "list");
    if (s->required && *n->value == 0)
        return config_node_error(err, n, "must not be empty");
    return load_scalar(s, n, n->value, ctx, err);
}

int params_load(const struct param_spec *spec, const char *type, const struct config_node *params, void *ctx,
                struct error *err)
{
    if (params != NULL && check_keys(spec, type, params, err) != 0)
        return -1;
    for (const struct param_spec *s = spec; s->name != NULL; s++)
        if (load_one(s, params, config_node_get(params, s->name), ctx, err) != 0)
            return -1;
    return 0;
}

void params_free(const struct param_spec *spec, void *ctx)
{
    for (const struct param_spec *s = spec; s->name != NULL; s++) {
        if (s->type == PARAM_STRING || s->type == PARAM_CHOICE) {
            char **field = FIELD(ctx, s, char *);
            free(*field);
            *field = NULL;
        } else if (s->type == PARAM_STRINGS) {
            string_list_free(FIELD(ctx, s, struct string_list));
        } else if (s->type == PARAM_SECTION) {
            params_free(s->section, ctx);
        }
    }
}

int config_rate_limit_check(const struct config_node *parent, const struct rate_limit *rl, struct error *err)
{
    const struct config_node *node = config_node_get(parent, "rate_limit");
    if (node != NULL && (rl->count == 0 || rl->window_ms == 0))
        return config_node_error(err, node, "rate_limit needs both count and window, such as {count: 20, window: 1m}");
    return 0;
}
