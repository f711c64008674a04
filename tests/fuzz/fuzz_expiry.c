/*
 * fuzz_expiry.c: libFuzzer target for expiry.c on a hostile object (a pod or node as read from the cluster,
 * its annotations writable by whoever can patch it). Checks: expiry_undo_patch's patch, when there is one,
 * is a JSON array of operations whose first tests /metadata/resourceVersion, whose paths all start with
 * /metadata/ or /spec/, that never removes one path twice (the API server would refuse the whole patch, and
 * the marks would never expire), and whose taint removals go from the last index down; `what` fits its
 * buffer. expiry_plan keeps its lists within EXPIRY_LIST_MAX and writes an expiry at least expire_after
 * ahead; the patches that write its marks touch only metadata. expiry_time_parse round-trips what it
 * reads through expiry_time_format.
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/expiry.h"
#include "playbookd/playbook.h"

#define NOW ((time_t)1900000000) /* 2030-03-17 */

static const struct expiry_mark marks[] = {
    {.kind = EXPIRY_TAINT, .key = "falco/alert", .value = "NoSchedule"},
    {.kind = EXPIRY_LABEL_SET, .key = "falco.org/quarantine", .value = "true"},
    {.kind = EXPIRY_CORDON},
};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A JSON patch: an array of {op, path[, value]}, every path under /metadata/ or /spec/ (a test of
 * /metadata/resourceVersion first when guarded), each path removed at most once. */
static void check_ops(const cJSON *ops, bool guarded)
{
    const cJSON *op, *other;
    long last_taint = -1;
    if (!cJSON_IsArray(ops) || (guarded && cJSON_GetArraySize(ops) < 2))
        abort();
    cJSON_ArrayForEach (op, ops) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(op, "path");
        if (!cJSON_IsString(kind) || !cJSON_IsString(path) ||
            !(starts_with(path->valuestring, "/metadata/") || starts_with(path->valuestring, "/spec/")))
            abort();
        if (guarded && op == ops->child &&
            (strcmp(kind->valuestring, "test") != 0 || strcmp(path->valuestring, "/metadata/resourceVersion") != 0))
            abort();
        if (strcmp(kind->valuestring, "remove") != 0)
            continue;
        if (starts_with(path->valuestring, "/spec/taints/")) {
            long i = strtol(path->valuestring + strlen("/spec/taints/"), NULL, 10);
            if (last_taint >= 0 && i >= last_taint)
                abort(); /* an earlier removal would shift the later indices */
            last_taint = i;
        }
        for (other = op->next; other != NULL; other = other->next) {
            const cJSON *p2 = cJSON_GetObjectItemCaseSensitive(other, "path");
            const cJSON *k2 = cJSON_GetObjectItemCaseSensitive(other, "op");
            if (cJSON_IsString(p2) && cJSON_IsString(k2) && strcmp(k2->valuestring, "remove") == 0 &&
                strcmp(p2->valuestring, path->valuestring) == 0)
                abort();
        }
    }
}

static void check_undo(const cJSON *object, bool force, size_t what_size)
{
    char *body = NULL, what[256];
    memset(what, 'x', sizeof(what));
    enum expiry_undo u = expiry_undo_patch(object, NOW, force, &body, what, what_size);
    if (memchr(what, 0, what_size) == NULL || (u != EXPIRY_PATCH) != (body == NULL))
        abort();
    if (u == EXPIRY_PATCH) {
        cJSON *ops = cJSON_Parse(body);
        check_ops(ops, true);
        cJSON_Delete(ops);
    }
    free(body);
}

static void check_plan(const cJSON *object, long expire_after_ms)
{
    struct expiry_write w;
    struct action_result res = {0};
    int own = expiry_plan(&w, object, expire_after_ms, NOW, marks, sizeof(marks) / sizeof(marks[0]), &res);
    if (own < -1 || own > (int)(sizeof(marks) / sizeof(marks[0])))
        abort();
    if (own < 0)
        return;
    if (strnlen(w.taints, sizeof(w.taints)) == sizeof(w.taints) ||
        strnlen(w.labels, sizeof(w.labels)) == sizeof(w.labels) ||
        strnlen(w.expires_at, sizeof(w.expires_at)) == sizeof(w.expires_at))
        abort();
    time_t at;
    if (expire_after_ms > 0 && (expiry_time_parse(w.expires_at, &at) != 0 || at < NOW + expire_after_ms / 1000))
        abort();
    cJSON *ops = cJSON_CreateArray(), *meta = cJSON_CreateObject();
    expiry_json_patch(ops, object, &w);
    check_ops(ops, false);
    expiry_merge_patch(meta, &w);
    cJSON_Delete(ops);
    cJSON_Delete(meta);
}

static void check_time(const char *text)
{
    time_t t, again;
    char formatted[EXPIRY_TIME_MAX];
    if (expiry_time_parse(text, &t) != 0 || t < 0 || t > (time_t)253402300799) /* 9999-12-31T23:59:59Z */
        return;
    expiry_time_format(t, formatted);
    if (expiry_time_parse(formatted, &again) != 0 || again != t)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *object = cJSON_ParseWithLength((const char *)data, size);
    char *text = malloc(size + 1);
    if (text != NULL) {
        memcpy(text, data, size);
        text[size] = 0;
        check_time(text);
        free(text);
    }
    if (object == NULL)
        return 0;
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(object, "metadata"), "annotations"),
        EXPIRY_AT);
    if (cJSON_IsString(at))
        check_time(at->valuestring);
    check_undo(object, false, 256);
    check_undo(object, true, 256);
    check_undo(object, true, 1 + size % 40);
    check_plan(object, 60000);
    check_plan(object, 0);
    cJSON_Delete(object);
    return 0;
}
