/* playbook.c: creating and destroying playbook instances, the registry lookup, and outcome helpers. */
#include "playbookd/playbook.h"

#include "playbookd/kube.h"
#include "playbookd/text.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct playbook_type *playbook_type_find(const char *name)
{
    for (const struct playbook_type *const *t = playbook_types; *t != NULL; t++)
        if (strcmp((*t)->name, name) == 0)
            return *t;
    return NULL;
}

static const struct param_spec rate_limit_params[] = {
    RATE_LIMIT_PARAMS(offsetof(struct playbook, rate_limit)),
    {0},
};

/* Settings every playbook accepts besides its type's own, loaded into struct playbook. */
static const struct param_spec common_params[] = {
    {.name = "cooldown",
     .type = PARAM_DURATION,
     .def = "0s",
     .offset = offsetof(struct playbook, cooldown_ms),
     .min = 0,
     .max = 7L * 24 * 3600 * 1000},
    {.name = "rate_limit", .type = PARAM_SECTION, .section = rate_limit_params},
    {.name = "expire_after", /* only for types that expire: see is_common */
     .type = PARAM_DURATION,
     .def = "0s",
     .offset = offsetof(struct playbook, expire_after_ms),
     .min = 0,
     .max = 365L * 24 * 3600 * 1000},
    {0},
};

static bool is_common(const struct playbook_type *type, const char *key)
{
    if (strcmp(key, "expire_after") == 0)
        return type->expires; /* else the type's own loader calls it unknown */
    for (const struct param_spec *s = common_params; s->name != NULL; s++)
        if (strcmp(s->name, key) == 0)
            return true;
    return false;
}

/* A shallow copy of the map params with only (common) or without (!common) the common keys; its children
 * array is the caller's to free. NULL params: an empty map. */
static int split_params(const struct playbook_type *type, const struct config_node *params, bool common,
                        struct config_node *out, struct error *err)
{
    memset(out, 0, sizeof(*out));
    if (params == NULL || params->kind != NODE_MAP) {
        if (params != NULL)
            *out = *params; /* not a map: the type's loader says so */
        return 0;
    }
    *out = *params;
    out->n_children = 0;
    out->children = calloc(params->n_children + 1, sizeof(*out->children));
    if (out->children == NULL)
        return error_set(err, "out of memory");
    for (size_t i = 0; i < params->n_children; i++)
        if (is_common(type, params->children[i].key) == common)
            out->children[out->n_children++] = params->children[i];
    return 0;
}

/* Loads the common settings into pb and the type's own into pb->ctx. */
static int load_params(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct config_node common, own;
    int rc = split_params(pb->type, params, true, &common, err);
    if (rc == 0 && (rc = split_params(pb->type, params, false, &own, err)) == 0) {
        rc = params_load(common_params, pb->type->name, params ? &common : NULL, pb, err);
        if (rc == 0 && params != NULL)
            rc = config_rate_limit_check(&common, &pb->rate_limit, err);
        if (rc == 0 && pb->type->params != NULL)
            rc = params_load(pb->type->params, pb->type->name, params ? &own : NULL, pb->ctx, err);
        if (params != NULL && params->kind == NODE_MAP)
            free(own.children);
    }
    if (params != NULL && params->kind == NODE_MAP)
        free(common.children);
    return rc;
}

int playbook_create(struct playbook **out, const char *name, const struct playbook_type *type,
                    const struct config_node *params, bool dry_run, const struct playbook_env *env, struct error *err)
{
    struct playbook *pb = calloc(1, sizeof(*pb));
    *out = NULL;
    if (pb == NULL || (pb->name = strdup(name)) == NULL) {
        free(pb);
        return error_set(err, "out of memory");
    }
    pb->type = type;
    pb->dry_run = dry_run;
    pb->env = env;
    if (type->ctx_size > 0 && (pb->ctx = calloc(1, type->ctx_size)) == NULL) {
        playbook_destroy(pb);
        return error_set(err, "out of memory");
    }
    if (load_params(pb, params, err) != 0 || (type->init != NULL && type->init(pb, params, err) != 0)) {
        playbook_destroy(pb);
        return -1;
    }
    *out = pb;
    return 0;
}

void playbook_destroy(struct playbook *pb)
{
    if (pb == NULL)
        return;
    if (pb->type->destroy != NULL)
        pb->type->destroy(pb);
    if (pb->type->params != NULL && pb->ctx != NULL)
        params_free(pb->type->params, pb->ctx);
    if (pb->type->ctx_size > 0)
        free(pb->ctx);
    free(pb->name);
    free(pb);
}

const char *outcome_name(enum outcome o)
{
    static const char *const names[OUTCOME_COUNT] = {"ok", "dry-run", "skipped", "failed"};
    return (unsigned)o < OUTCOME_COUNT ? names[o] : "unknown";
}

enum outcome action_skip(struct action_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
    return OUTCOME_SKIPPED;
}

enum outcome action_fail(struct action_result *res, bool transient, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
    res->transient = transient;
    return OUTCOME_FAILED;
}

void playbook_record_event(const struct playbook *pb, const struct alert *a, const char *kind, const char *ns,
                           const char *name, const char *uid, const char *action)
{
    char full[ALERT_MAX_RULE + 512], note[900]; /* the note is capped, cut on a character boundary */
    snprintf(full, sizeof(full), "playbookd playbook %s (%s) after Falco rule \"%s\" (%s)", pb->name, pb->type->name,
             a->rule, priority_name(a->priority));
    text_copy(note, sizeof(note), full);
    struct kube_event ev = {
        .kind = kind,
        .namespace_ = ns,
        .name = name,
        .uid = uid,
        .action = action,
        .note = note,
        .dry_run = pb->dry_run,
    };
    kube_record_event(pb->env->kube, &ev);
}

enum outcome playbook_changed(const struct playbook *pb)
{
    return pb->dry_run ? OUTCOME_DRY_RUN : OUTCOME_OK;
}

enum outcome playbook_kube_failure(const struct kube_response *resp, const char *what, struct action_result *res)
{
    if (resp->status == 0)
        return action_fail(res, true, "%s: %s", what, resp->message);
    bool transient = resp->status == 429 || resp->status >= 500;
    enum outcome o = resp->message[0]
                         ? action_fail(res, transient, "%s: HTTP %ld (%s)", what, resp->status, resp->message)
                         : action_fail(res, transient, "%s: HTTP %ld", what, resp->status);
    res->retry_after_ms = resp->retry_after_s * 1000;
    return o;
}

enum outcome playbook_kube_get(struct kube *k, const char *path, const char *what, struct kube_response *resp,
                               struct action_result *res)
{
    kube_send(k, "GET", path, NULL, NULL, false, resp);
    if (resp->status == 200 && kube_response_json(resp) != NULL)
        return OUTCOME_OK;
    if (resp->status == 200)
        return action_fail(res, true, "%s: the answer is not JSON", what);
    return playbook_kube_failure(resp, what, res);
}
