/* playbook.c: creating and destroying playbook instances, the registry lookup, and outcome helpers. */
#include "playbookd/playbook.h"

#include <stdarg.h>
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

int playbook_create(struct playbook **out, const char *name, const struct playbook_type *type,
                    const struct config_node *params, bool dry_run, struct error *err)
{
    struct playbook *pb = calloc(1, sizeof(*pb));
    *out = NULL;
    if (pb == NULL || (pb->name = strdup(name)) == NULL) {
        free(pb);
        return error_set(err, "out of memory");
    }
    pb->type = type;
    pb->dry_run = dry_run;
    if (type->init(pb, params, err) != 0) {
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
    pb->type->destroy(pb);
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
