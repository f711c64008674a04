/*
 * expiry.c: containment that expires (see expiry.h for the encoding on the objects): the marks a change
 * writes, the guarded patch that undoes them, the undo of one object (--release and the sweeper), and the
 * sweeper thread that lists marked nodes and pods and undoes the expired ones.
 */
#include "playbookd/expiry.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/log.h"
#include "playbookd/target.h"

#define TAINTS_MAX 256 /* taints of one node considered for removal */

static const cJSON *field(const cJSON *object, const char *a, const char *b)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(object, a), b);
}

/* A string annotation of object, or NULL. */
static const char *annotation(const cJSON *object, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(field(object, "metadata", "annotations"), key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void expiry_time_format(time_t t, char out[EXPIRY_TIME_MAX])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, EXPIRY_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int expiry_time_parse(const char *text, time_t *t)
{
    struct tm tm = {0};
    int used = 0;
    if (strlen(text) > 40 ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &used) != 6 ||
        used != 19 || text[4] != '-' || text[7] != '-' || text[13] != ':' || text[16] != ':')
        return -1;
    const char *rest = text + used;
    if (*rest == '.')
        rest += 1 + strspn(rest + 1, "0123456789");
    if (strcmp(rest, "Z") != 0 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *t = timegm(&tm);
    return 0;
}

/* The i-th entry's length, from s; entries are separated by ','. */
static size_t entry_len(const char *s)
{
    return strcspn(s, ",");
}

/* True when the entry at item (len bytes) stands for the same mark as entry: the same taint (key:effect), or a
 * label of the same key (key=...). */
static bool same_mark(const char *item, size_t len, const char *entry)
{
    const char *eq = strchr(entry, '=');
    size_t key = eq ? (size_t)(eq - entry) + 1 : strlen(entry);
    return eq ? len >= key && strncmp(item, entry, key) == 0 : len == key && strncmp(item, entry, key) == 0;
}

/* Puts entry into the list (replacing the same mark); -1 when the list would not fit in size. */
static int list_put(char *list, size_t size, const char *entry)
{
    char out[EXPIRY_LIST_MAX];
    size_t n = 0;
    for (const char *p = list; *p; p += entry_len(p) + (p[entry_len(p)] == ',')) {
        size_t len = entry_len(p);
        if (len == 0 || same_mark(p, len, entry))
            continue;
        if (n + len + 2 > sizeof(out))
            return -1;
        memcpy(out + n, p, len);
        n += len;
        out[n++] = ',';
    }
    if (n + strlen(entry) + 1 > size || n + strlen(entry) + 1 > sizeof(out))
        return -1;
    strcpy(out + n, entry);
    strcpy(list, out);
    return 0;
}

/* True when the list (comma-separated) holds the n bytes at entry as one of its entries before stop (an entry
 * of the list; NULL: anywhere). */
static bool listed_before(const char *list, const char *stop, const char *entry, size_t n)
{
    for (const char *p = list ? list : ""; *p && p != stop; p += entry_len(p) + (p[entry_len(p)] == ','))
        if (entry_len(p) == n && strncmp(p, entry, n) == 0)
            return true;
    return false;
}

/* True when the list (comma-separated) holds entry exactly. */
static bool listed(const char *list, const char *entry)
{
    return listed_before(list, NULL, entry, strlen(entry));
}

static bool has_taint(const cJSON *object, const char *key, const char *effect)
{
    const cJSON *t;
    cJSON_ArrayForEach (t, field(object, "spec", "taints")) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(t, "key"), *e = cJSON_GetObjectItemCaseSensitive(t, "effect");
        if (cJSON_IsString(k) && cJSON_IsString(e) && strcmp(k->valuestring, key) == 0 &&
            strcmp(e->valuestring, effect) == 0)
            return true;
    }
    return false;
}

/* The mark as its list entry ("key:effect", "key=value"), and whether it is playbookd's own (see expiry_plan). */
static bool own_mark(const cJSON *object, const struct expiry_mark *m, char *entry, size_t size)
{
    if (m->kind == EXPIRY_CORDON) {
        const char *by = annotation(object, TARGET_CORDONED_BY);
        entry[0] = 0;
        return (by != NULL && strcmp(by, TARGET_CORDONED_BY_VALUE) == 0) ||
               !cJSON_IsTrue(field(object, "spec", "unschedulable"));
    }
    snprintf(entry, size, "%s%c%s", m->key, m->kind == EXPIRY_TAINT ? ':' : '=', m->value);
    if (m->kind == EXPIRY_TAINT)
        return listed(annotation(object, EXPIRY_TAINTS), entry) || !has_taint(object, m->key, m->value);
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(field(object, "metadata", "labels"), m->key);
    return listed(annotation(object, EXPIRY_LABELS), entry) ||
           !(cJSON_IsString(have) && strcmp(have->valuestring, m->value) == 0);
}

/* Drops the entries that stand for the same mark as entry (list_put's rule) from list. */
static void list_drop(char *list, const char *entry)
{
    char out[EXPIRY_LIST_MAX];
    size_t n = 0;
    for (const char *p = list; *p; p += entry_len(p) + (p[entry_len(p)] == ',')) {
        size_t len = entry_len(p);
        if (len == 0 || same_mark(p, len, entry) || n + len + 1 > sizeof(out)) /* its ',' ends as the NUL */
            continue;
        memcpy(out + n, p, len);
        n += len;
        out[n++] = ',';
    }
    out[n > 0 ? n - 1 : 0] = 0;
    strcpy(list, out);
}

/* w as the object carries it now: its expiry, lists and cordon mark; -1 (failed) when a list is too long. */
static int marks_read(struct expiry_write *w, const cJSON *object, struct action_result *res)
{
    const char *at = annotation(object, EXPIRY_AT), *taints = annotation(object, EXPIRY_TAINTS);
    const char *labels = annotation(object, EXPIRY_LABELS);
    memset(w, 0, sizeof(*w));
    if (strlen(taints ? taints : "") >= sizeof(w->taints) || strlen(labels ? labels : "") >= sizeof(w->labels)) {
        action_fail(res, false, "expiry: the object's playbookd marks are longer than %d bytes", EXPIRY_LIST_MAX);
        return -1;
    }
    if (at != NULL && strlen(at) < sizeof(w->expires_at))
        strcpy(w->expires_at, at); /* else unreadable: replaced, or left as it is by a cancel */
    snprintf(w->taints, sizeof(w->taints), "%s", taints ? taints : "");
    snprintf(w->labels, sizeof(w->labels), "%s", labels ? labels : "");
    w->cordon = annotation(object, EXPIRY_CORDON_AT) != NULL;
    return 0;
}

/* A change made for good (no expire_after): its marks come out of w, so that the sweeper leaves it in place;
 * how many there were. With no mark left (none_left), the patch removes every annotation and the label. */
static int marks_cancel(struct expiry_write *w, const struct expiry_mark *marks, size_t n)
{
    int cancelled = 0;
    w->cancel = true;
    for (size_t i = 0; i < n; i++) {
        char entry[600];
        char *list = marks[i].kind == EXPIRY_TAINT ? w->taints : w->labels;
        if (marks[i].kind == EXPIRY_CORDON) {
            cancelled += w->cordon;
            w->cordon = false;
            continue;
        }
        snprintf(entry, sizeof(entry), "%s%c%s", marks[i].key, marks[i].kind == EXPIRY_TAINT ? ':' : '=',
                 marks[i].value);
        size_t before = strlen(list);
        list_drop(list, entry);
        cancelled += strlen(list) != before;
    }
    w->none_left = !w->taints[0] && !w->labels[0] && !w->cordon;
    return cancelled;
}

int expiry_plan(struct expiry_write *w, const cJSON *object, long expire_after_ms, time_t now,
                const struct expiry_mark *marks, size_t n, struct action_result *res)
{
    time_t at = now + (time_t)((expire_after_ms + 999) / 1000), was;
    if (marks_read(w, object, res) != 0)
        return -1;
    if (expire_after_ms <= 0)
        return marks_cancel(w, marks, n);
    if (expiry_time_parse(w->expires_at, &was) == 0 && was > at)
        at = was; /* the later expiry wins: the safer containment */
    expiry_time_format(at, w->expires_at);
    int own = 0;
    for (size_t i = 0; i < n; i++) {
        char entry[600];
        if (!own_mark(object, &marks[i], entry, sizeof(entry)))
            continue;
        own++;
        if (marks[i].kind == EXPIRY_CORDON) {
            w->cordon = true; /* beside cordon-node's own annotation, which every cordon of playbookd's has */
            continue;
        }
        if (list_put(marks[i].kind == EXPIRY_TAINT ? w->taints : w->labels, EXPIRY_LIST_MAX, entry) != 0) {
            action_fail(res, false, "expiry: the object's playbookd marks would pass %d bytes", EXPIRY_LIST_MAX);
            return -1;
        }
    }
    return own;
}

int expiry_for(const struct playbook *pb, const cJSON *object, const struct expiry_mark *marks, size_t n,
               struct expiry_write *w, struct action_result *res)
{
    return expiry_plan(w, object, pb->expire_after_ms, time(NULL), marks, n, res);
}

void expiry_note(struct action_result *res, const char *state, const struct playbook *pb, int own)
{
    size_t used = strlen(res->target);
    const char *change = own <= 0 ? "" : pb->expire_after_ms > 0 ? ": expiry extended" : ": no longer expires";
    snprintf(res->target + used, sizeof(res->target) - used, " (%s%s)", state, change);
}

static void add_op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddStringToObject(o, "path", path);
    if (value != NULL)
        cJSON_AddItemToObject(o, "value", value);
    cJSON_AddItemToArray(ops, o);
}

/* Ops that set keys[i] = values[i] in the map metadata.<map>: a NULL value is left as it is, an empty one
 * removed when the object has it. */
static void set_map(cJSON *ops, const cJSON *object, const char *map, const char *const *keys,
                    const char *const *values, size_t n)
{
    char base[32], path[128];
    const cJSON *have = field(object, "metadata", map);
    snprintf(base, sizeof(base), "/metadata/%s", map);
    if (!cJSON_IsObject(have)) {
        cJSON *all = cJSON_CreateObject();
        for (size_t i = 0; i < n; i++)
            if (values[i] != NULL && values[i][0])
                cJSON_AddStringToObject(all, keys[i], values[i]);
        if (all->child != NULL)
            add_op(ops, "add", base, all);
        else
            cJSON_Delete(all);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL || (values[i][0] == 0 && cJSON_GetObjectItemCaseSensitive(have, keys[i]) == NULL))
            continue;
        kube_json_pointer(path, sizeof(path), base, keys[i]);
        add_op(ops, values[i][0] ? "add" : "remove", path, values[i][0] ? cJSON_CreateString(values[i]) : NULL);
    }
}

/* The annotations of w (keys and values for set_map: NULL left as it is, "" removed); a cancel with no mark
 * left removes every one. */
static void marks_values(const struct expiry_write *w, const char *values[4])
{
    values[0] = w->none_left ? "" : w->cancel ? NULL : w->expires_at; /* a cancel keeps the expiry of the rest */
    values[1] = w->taints;
    values[2] = w->labels;
    values[3] = w->cordon ? "expires" : w->cancel ? "" : NULL;
}

static const char *const marks_keys[] = {EXPIRY_AT, EXPIRY_TAINTS, EXPIRY_LABELS, EXPIRY_CORDON_AT};

void expiry_json_patch(cJSON *ops, const cJSON *object, const struct expiry_write *w)
{
    const char *values[4], *const label[] = {EXPIRY_LABEL}, *contained[] = {"true"};
    marks_values(w, values);
    if (w->none_left)
        contained[0] = "";
    set_map(ops, object, "annotations", marks_keys, values, 4);
    set_map(ops, object, "labels", label, contained, 1);
}

void expiry_merge_patch(cJSON *meta, const struct expiry_write *w)
{
    const char *values[4];
    cJSON *annotations = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
    if (annotations == NULL)
        annotations = cJSON_AddObjectToObject(meta, "annotations");
    if (labels == NULL)
        labels = cJSON_AddObjectToObject(meta, "labels");
    marks_values(w, values);
    for (size_t i = 0; i < 4; i++) {
        if (values[i] != NULL && values[i][0])
            cJSON_AddStringToObject(annotations, marks_keys[i], values[i]);
        else if (values[i] != NULL && w->cancel) /* null removes it; nothing happens where it is absent */
            cJSON_AddNullToObject(annotations, marks_keys[i]);
    }
    if (w->none_left)
        cJSON_AddNullToObject(labels, EXPIRY_LABEL);
    else
        cJSON_AddStringToObject(labels, EXPIRY_LABEL, "true");
}

/* ---- undo ---------------------------------------------------------------------------------------------- */

/* What the undo patch is being built from and into. */
struct undo {
    const cJSON *object;
    cJSON *ops;
    char *what;
    size_t size;
    size_t undone; /* changes (not annotations) in the patch */
    bool force;    /* --release: every mark, the cordon too when it was not meant to expire */
};

static void say(struct undo *u, const char *kind, const char *text, size_t len)
{
    size_t used = strlen(u->what);
    snprintf(u->what + used, u->size - used, "%s%s%s%.*s", used ? ", " : "", kind, len ? " " : "", (int)len, text);
    u->undone++;
}

/* Removes the recorded taints the node still has (key and effect match), from the last index down. */
static void undo_taints(struct undo *u, const char *list)
{
    const cJSON *taints = field(u->object, "spec", "taints"), *t;
    bool remove[TAINTS_MAX] = {false};
    int i = 0;
    cJSON_ArrayForEach (t, taints) {
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(t, "key");
        const cJSON *effect = cJSON_GetObjectItemCaseSensitive(t, "effect");
        char entry[600];
        if (i >= TAINTS_MAX)
            break;
        if (cJSON_IsString(key) && cJSON_IsString(effect)) {
            snprintf(entry, sizeof(entry), "%s:%s", key->valuestring, effect->valuestring);
            for (const char *p = list; *p && !remove[i]; p += entry_len(p) + (p[entry_len(p)] == ','))
                remove[i] = entry_len(p) == strlen(entry) && strncmp(p, entry, strlen(entry)) == 0;
            if (remove[i])
                say(u, "taint", entry, strlen(entry));
        }
        i++;
    }
    for (char path[32]; i-- > 0;) {
        if (!remove[i])
            continue;
        snprintf(path, sizeof(path), "/spec/taints/%d", i);
        add_op(u->ops, "remove", path, NULL);
    }
}

/* Removes each recorded label whose value is still the one recorded (a valid key, not the contained label). */
static void undo_labels(struct undo *u, const char *list)
{
    const cJSON *labels = field(u->object, "metadata", "labels");
    for (const char *p = list; *p; p += entry_len(p) + (p[entry_len(p)] == ',')) {
        size_t len = entry_len(p);
        char key[320], path[700];
        const char *eq = memchr(p, '=', len);
        if (eq == NULL || (size_t)(eq - p) >= sizeof(key))
            continue;
        memcpy(key, p, (size_t)(eq - p));
        key[eq - p] = 0;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
        size_t vlen = len - (size_t)(eq - p) - 1;
        if (!kube_qualified_name(key) || strcmp(key, EXPIRY_LABEL) == 0 || !cJSON_IsString(v) ||
            strlen(v->valuestring) != vlen || strncmp(v->valuestring, eq + 1, vlen) != 0)
            continue; /* gone, or changed since: not playbookd's any more */
        if (listed_before(list, p, p, len))
            continue; /* recorded twice: one removal (a second would fail the whole patch, every sweep) */
        kube_json_pointer(path, sizeof(path), "/metadata/labels", key);
        add_op(u->ops, "remove", path, NULL);
        say(u, "label", p, len);
    }
}

/*
 * Uncordons a node that playbookd cordoned (cordon-node's annotation) when that cordon expires (EXPIRY_CORDON_AT
 * records it) or on --release, and removes the annotation with it; a cordon someone else made has no such
 * annotation, and a cordon that does not expire keeps it when another mark of the node expires.
 */
static void undo_cordon(struct undo *u, const char *value)
{
    char path[128];
    if (strcmp(value, TARGET_CORDONED_BY_VALUE) != 0 || !(u->force || annotation(u->object, EXPIRY_CORDON_AT) != NULL))
        return;
    if (cJSON_IsTrue(field(u->object, "spec", "unschedulable"))) {
        add_op(u->ops, "remove", "/spec/unschedulable", NULL);
        say(u, "cordon", "", 0);
    }
    kube_json_pointer(path, sizeof(path), "/metadata/annotations", TARGET_CORDONED_BY);
    add_op(u->ops, "remove", path, NULL);
}

/* One kind of mark: its annotation, and how to undo what it records. Adding a kind is a line here. */
static const struct undo_kind {
    const char *annotation;
    void (*undo)(struct undo *u, const char *value);
} undo_kinds[] = {
    {EXPIRY_TAINTS, undo_taints},
    {EXPIRY_LABELS, undo_labels},
    {TARGET_CORDONED_BY, undo_cordon},
    {NULL, NULL},
};

/* Removes the annotations and the label playbookd's expiring marks consist of; false when there are none. */
static bool remove_marks(struct undo *u)
{
    static const char *const keys[] = {EXPIRY_AT, EXPIRY_TAINTS, EXPIRY_LABELS, EXPIRY_CORDON_AT};
    char path[128];
    bool any = false;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *key = keys[i];
        if (annotation(u->object, key) == NULL)
            continue;
        kube_json_pointer(path, sizeof(path), "/metadata/annotations", key);
        add_op(u->ops, "remove", path, NULL);
        any = true;
    }
    if (cJSON_GetObjectItemCaseSensitive(field(u->object, "metadata", "labels"), EXPIRY_LABEL) != NULL) {
        kube_json_pointer(path, sizeof(path), "/metadata/labels", EXPIRY_LABEL);
        add_op(u->ops, "remove", path, NULL);
        any = true;
    }
    return any;
}

/* When the object's marks expire: EXPIRY_PATCH (due), EXPIRY_NOT_YET, EXPIRY_INVALID or EXPIRY_NOTHING. */
static enum expiry_undo due(const cJSON *object, time_t now)
{
    const char *at = annotation(object, EXPIRY_AT);
    time_t t;
    if (at == NULL)
        return EXPIRY_NOTHING; /* a cordon without expire_after is released only on request */
    if (expiry_time_parse(at, &t) != 0)
        return EXPIRY_INVALID;
    return t <= now ? EXPIRY_PATCH : EXPIRY_NOT_YET;
}

enum expiry_undo expiry_undo_patch(const cJSON *object, time_t now, bool force, char **body, char *what, size_t size)
{
    const cJSON *version = field(object, "metadata", "resourceVersion");
    enum expiry_undo when = force ? EXPIRY_PATCH : due(object, now);
    *body = NULL;
    what[0] = 0;
    if (when != EXPIRY_PATCH || !cJSON_IsString(version))
        return cJSON_IsString(version) ? when : EXPIRY_NOTHING;
    cJSON *ops = cJSON_CreateArray();
    struct undo u = {.object = object, .ops = ops, .what = what, .size = size, .force = force};
    add_op(ops, "test", "/metadata/resourceVersion", cJSON_CreateString(version->valuestring));
    for (const struct undo_kind *k = undo_kinds; k->annotation != NULL; k++) {
        const char *value = annotation(object, k->annotation);
        if (value != NULL)
            k->undo(&u, value);
    }
    if (!remove_marks(&u) && u.undone == 0) {
        cJSON_Delete(ops);
        return EXPIRY_NOTHING;
    }
    if (u.undone == 0)
        snprintf(what, size, "marks only: what they record is gone already");
    *body = cJSON_PrintUnformatted(ops);
    cJSON_Delete(ops);
    return EXPIRY_PATCH;
}

/* ---- release: the undo of one object ------------------------------------------------------------------- */

static void log_release(const char *playbook, enum outcome o, const struct action_result *res, const char *what)
{
    char text[ACTION_REASON_MAX + 16];
    if (o == OUTCOME_SKIPPED || o == OUTCOME_FAILED)
        snprintf(text, sizeof(text), "%s (%s)", outcome_name(o), res->reason);
    else
        snprintf(text, sizeof(text), "%s", outcome_name(o));
    log_kv(o == OUTCOME_FAILED ? LOG_WARN : LOG_INFO, "action", "playbook", playbook, "type", "release", "target",
           res->target, "outcome", text, "released", what[0] ? what : NULL, NULL);
}

static void record_release(struct kube *k, const char *ns, const char *name, const cJSON *object, bool force,
                           bool dry_run, const char *what)
{
    const cJSON *uid = field(object, "metadata", "uid");
    char note[1024];
    snprintf(note, sizeof(note), "playbookd released its containment (%s): %s", force ? "on request" : "expired", what);
    struct kube_event ev = {
        .kind = ns ? "Pod" : "Node",
        .namespace_ = ns,
        .name = name,
        .uid = ns && cJSON_IsString(uid) ? uid->valuestring : NULL,
        .action = ns ? "ReleasePod" : "ReleaseNode",
        .reason = force ? "ContainmentReleased" : "ContainmentExpired",
        .note = note,
        .dry_run = dry_run,
    };
    kube_record_event(k, &ev);
}

/* Sends the undo patch; 1 when the object changed since it was read (read it again). */
static int send_undo(struct kube *k, const char *path, char *body, bool dry_run, enum outcome *o,
                     struct action_result *res)
{
    struct kube_response resp;
    kube_send(k, "PATCH", path, "application/json-patch+json", body, dry_run, &resp);
    int again = 0;
    if (resp.status == 200)
        *o = dry_run ? OUTCOME_DRY_RUN : OUTCOME_OK;
    else if (resp.status == 404)
        *o = action_skip(res, "gone");
    else if (resp.status == 409 || (resp.status == 422 && kube_patch_test_failed(kube_response_json(&resp))))
        again = 1, *o = action_fail(res, true, "changed while it was being released (HTTP %ld)", resp.status);
    else
        *o = playbook_kube_failure(&resp, "release", res);
    kube_response_free(&resp);
    return again;
}

/* One read (or the listed object) and one patch; 1 to try again from a fresh read. */
static int release_once(struct kube *k, const char *path, const char *ns, const char *name, const cJSON *listed,
                        bool force, bool dry_run, enum outcome *o, char *what, size_t size, struct action_result *res)
{
    struct kube_response resp = {0};
    const cJSON *object = listed;
    char *body = NULL;
    int again = 0;
    if (object == NULL && (*o = playbook_kube_get(k, path, "get", &resp, res)) != OUTCOME_OK) {
        if (resp.status == 404)
            *o = action_skip(res, "gone");
        kube_response_free(&resp);
        return 0;
    }
    object = object ? object : resp.json;
    enum expiry_undo u = expiry_undo_patch(object, time(NULL), force, &body, what, size);
    if (u == EXPIRY_NOTHING)
        *o = action_skip(res, "nothing to release");
    else if (u == EXPIRY_NOT_YET)
        *o = action_skip(res, "not expired yet (%s)", annotation(object, EXPIRY_AT));
    else if (u == EXPIRY_INVALID)
        *o = action_fail(res, false, "%s is not an RFC 3339 time: left alone (use --release)", EXPIRY_AT);
    else if (body == NULL)
        *o = action_fail(res, true, "out of memory");
    else if ((again = send_undo(k, path, body, dry_run, o, res)) == 0 && *o != OUTCOME_SKIPPED)
        record_release(k, ns, name, object, force, dry_run, what);
    kube_response_free(&resp);
    return again;
}

enum outcome expiry_release(struct kube *k, const char *playbook, const char *ns, const char *name, const cJSON *listed,
                            bool force, bool dry_run, struct action_result *res)
{
    char path[600], what[ACTION_REASON_MAX] = "";
    enum outcome o = OUTCOME_FAILED;
    if (ns != NULL) {
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ns, name);
        snprintf(res->target, sizeof(res->target), "pod %s/%s", ns, name);
    } else {
        snprintf(path, sizeof(path), "/api/v1/nodes/%s", name);
        snprintf(res->target, sizeof(res->target), "node %s", name);
    }
    for (int i = 0; i < EXPIRY_TRIES; i++, listed = NULL)
        if (release_once(k, path, ns, name, listed, force, dry_run, &o, what, sizeof(what), res) == 0)
            break;
    if (o != OUTCOME_OK && o != OUTCOME_DRY_RUN)
        what[0] = 0; /* nothing was released */
    log_release(playbook, o, res, what);
    return o;
}

bool expiry_configured(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        if (cfg->playbooks[i]->expire_after_ms > 0)
            return true;
    return false;
}

const struct rbac_rule expiry_rbac[] = {
    {.group = "", .resource = "nodes", .verb = "get"},
    {.group = "", .resource = "nodes", .verb = "list"},
    {.group = "", .resource = "nodes", .verb = "patch"},
    {.group = "", .resource = "pods", .verb = "get"},
    {.group = "", .resource = "pods", .verb = "list"},
    {.group = "", .resource = "pods", .verb = "patch"},
    {0},
};

/* ---- the sweeper --------------------------------------------------------------------------------------- */

struct expiry_sweeper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    struct kube *kube;
    long interval_ms;
    bool dry_run;
};

static bool stopping(struct expiry_sweeper *s)
{
    pthread_mutex_lock(&s->lock);
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->lock);
    return stop;
}

/* Releases the listed object when it is due (or logs that its expiry cannot be read). */
static void sweep_item(struct expiry_sweeper *s, const cJSON *item, bool pods)
{
    const cJSON *name = field(item, "metadata", "name"), *ns = field(item, "metadata", "namespace");
    struct action_result res = {0};
    if (!cJSON_IsString(name) || !kube_name_subdomain(name->valuestring) ||
        (pods && !(cJSON_IsString(ns) && kube_name_label(ns->valuestring))))
        return; /* the API server never lists such a name */
    enum expiry_undo when = due(item, time(NULL));
    if (when == EXPIRY_PATCH || when == EXPIRY_INVALID) /* an unreadable expiry is logged, left alone */
        expiry_release(s->kube, "expiry", pods ? ns->valuestring : NULL, name->valuestring, item, false, s->dry_run,
                       &res);
}

/* One page of marked nodes or pods; the next page's continue token into cont ("" when it was the last). */
static int sweep_page(struct expiry_sweeper *s, bool pods, char *cont, size_t size)
{
    char path[1400], escaped[1100] = "";
    struct kube_response resp;
    struct action_result res = {0};
    if (cont[0] && kube_query_escape(escaped, sizeof(escaped), cont) != 0)
        return -1;
    snprintf(path, sizeof(path), "/api/v1/%s?labelSelector=%s&limit=%d%s%s", pods ? "pods" : "nodes",
             EXPIRY_LABEL_SELECTOR, EXPIRY_PAGE, escaped[0] ? "&continue=" : "", escaped);
    if (playbook_kube_get(s->kube, path, pods ? "list pods" : "list nodes", &resp, &res) != OUTCOME_OK) {
        log_kv(LOG_WARN, "expiry: cannot list marked objects", "error", res.reason, NULL);
        kube_response_free(&resp);
        return -1;
    }
    const cJSON *item, *next = field(resp.json, "metadata", "continue");
    cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive(resp.json, "items"))
        if (!stopping(s))
            sweep_item(s, item, pods);
    int rc = 0;
    cont[0] = 0;
    if (cJSON_IsString(next) && strlen(next->valuestring) >= size) {
        log_kv(LOG_WARN, "expiry: the list's continue token is too long: the rest waits for the next sweep", NULL);
        rc = -1;
    } else if (cJSON_IsString(next)) {
        snprintf(cont, size, "%s", next->valuestring);
    }
    kube_response_free(&resp);
    return rc;
}

static void sweep(struct expiry_sweeper *s)
{
    for (int pods = 0; pods < 2; pods++) {
        char cont[1024] = "";
        int page = 0;
        while (page++ < EXPIRY_PAGES_MAX && !stopping(s) && sweep_page(s, pods, cont, sizeof(cont)) == 0 && cont[0])
            ;
        if (page > EXPIRY_PAGES_MAX && cont[0]) {
            char n[16];
            snprintf(n, sizeof(n), "%d", EXPIRY_PAGES_MAX * EXPIRY_PAGE);
            log_kv(LOG_WARN, "expiry: sweep cut: the rest waits for the next sweep", "kind", pods ? "pods" : "nodes",
                   "objects_read", n, NULL);
        }
    }
}

static void *sweeper_main(void *arg)
{
    struct expiry_sweeper *s = arg;
    pthread_setname_np(pthread_self(), "pb-expiry");
    while (!stopping(s)) {
        sweep(s);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += s->interval_ms / 1000;
        until.tv_nsec += (s->interval_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000)
            until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_mutex_lock(&s->lock);
        while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->lock, &until) == 0)
            ;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

int expiry_sweeper_start(struct expiry_sweeper **out, const struct config *cfg, struct error *err)
{
    struct expiry_sweeper *s = calloc(1, sizeof(*s));
    pthread_condattr_t attr;
    *out = NULL;
    if (s == NULL)
        return error_set(err, "out of memory");
    s->interval_ms = cfg->expiry_interval_ms;
    s->dry_run = cfg->dry_run;
    if (kube_create(&s->kube, &cfg->kube, err) != 0) {
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&s->thread, NULL, sweeper_main, s) != 0) {
        kube_destroy(s->kube);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return error_set(err, "cannot start the expiry sweeper");
    }
    char every[24];
    snprintf(every, sizeof(every), "%ldms", s->interval_ms);
    log_kv(LOG_INFO, "expiry sweeper started", "interval", every, NULL);
    *out = s;
    return 0;
}

void expiry_sweeper_stop(struct expiry_sweeper *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    kube_destroy(s->kube);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
