/*
 * capture_logs.c: the `capture-logs` playbook. Keeps the pod's recent logs as evidence before anything
 * else happens to it (list it first in a topic: playbooks run in config order). It reads the pod (its
 * containers, init and ephemeral ones included, and their restartCount), then for each container the last
 * tail_lines lines with timestamps, and those of the previous container when it restarted, and creates
 * one immutable ConfigMap in evidence_namespace named POD-YYYYMMDDTHHMMSSZ-HASH (the alert's time and a
 * hash of the alert as received, so a redelivered alert finds its ConfigMap: 409 AlreadyExists is ok).
 * Keys: CONTAINER.log, CONTAINER.previous.log, and alert.json, the alert as received.
 *
 * Log text is attacker-controlled. Each read asks at most CAPTURE_FETCH_MAX bytes (limitBytes); invalid
 * UTF-8 (and NUL) becomes U+FFFD; all logs together are capped at CAPTURE_LOGS_MAX stored bytes and
 * CAPTURE_LOGS_WIRE_MAX bytes as JSON text (a control character is six bytes there: the request stays
 * under the API server's 3 MiB), shared fairly between the streams (what one leaves goes to the next).
 * A log over its share keeps its newest lines, cut on a line boundary, after a marker saying how many
 * bytes were dropped. alert.json is capped at CAPTURE_ALERT_MAX (then it is alert.cut.json), so the
 * ConfigMap stays under its 1 MiB limit.
 */
#include <cjson/cJSON.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/kube.h"
#include "playbookd/playbook.h"
#include "playbookd/subject.h"
#include "playbookd/target.h"
#include "playbookd/text.h"

#define CAPTURE_LOGS_MAX (512 * 1024)        /* stored bytes of every log together, markers included */
#define CAPTURE_LOGS_WIRE_MAX (1024 * 1024)  /* the same as JSON string text in the request */
#define CAPTURE_ALERT_MAX (480 * 1024)       /* stored bytes of the alert: with the logs, under 1 MiB */
#define CAPTURE_ALERT_WIRE_MAX (1024 * 1024) /* the alert as JSON string text */
#define CAPTURE_FETCH_MAX (1024 * 1024)      /* limitBytes of one log read */
#define CAPTURE_CONTAINERS_MAX 32            /* containers captured; the others are counted in an annotation */
#define CAPTURE_NAME_MAX 200                 /* the ConfigMap's name: "configmap NS/NAME" fits a target */
#define HASH_HEX 10

struct capture_logs {
    long tail_lines;
    char *evidence_namespace;
};

static const struct param_spec capture_logs_params[] = {
    {.name = "tail_lines",
     .type = PARAM_INT,
     .def = "200",
     .offset = offsetof(struct capture_logs, tail_lines),
     .min = 1,
     .max = 10000},
    {.name = "evidence_namespace",
     .type = PARAM_STRING,
     .def = "playbookd-evidence",
     .offset = offsetof(struct capture_logs, evidence_namespace)},
    {0},
};

static int capture_logs_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    const struct capture_logs *c = pb->ctx;
    if (c->evidence_namespace == NULL || !kube_name_label(c->evidence_namespace))
        return config_node_error(err, config_node_get(params, "evidence_namespace"),
                                 "not a valid namespace name (a DNS-1123 label)");
    return 0;
}

/* The first HASH_HEX hex digits of SHA-256(data). */
static void hash_hex(const char *data, size_t len, char out[HASH_HEX + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, md);
    for (int i = 0; i < HASH_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* text (of [-._a-zA-Z0-9], alphanumeric first) as a label value: as is up to 63, else its first 52
 * characters, trimmed to end alphanumeric, "-" and a hash of the whole. */
static void label_value(const char *text, char out[64])
{
    size_t n = strlen(text);
    char hash[HASH_HEX + 1];
    if (n <= 63) {
        memcpy(out, text, n + 1);
        return;
    }
    hash_hex(text, n, hash);
    for (n = 52; n > 0 && !alnum(text[n - 1]); n--)
        ;
    snprintf(out, 64, "%.*s-%s", (int)n, text, hash);
}

/* Working state of one run. */
struct capture {
    struct playbook *pb;
    const struct alert *a;
    const struct target *t;
    const char *alert; /* the alert as received (a->text), or as re-printed when it was not kept */
    size_t alert_len;
    char *printed;         /* the re-printed alert, to free */
    cJSON *data;           /* the ConfigMap's data */
    size_t logs_left;      /* stored bytes still free for logs */
    size_t wire_left;      /* JSON text bytes still free for logs */
    size_t streams_left;   /* log reads still to make, for the fair share */
    unsigned not_captured; /* containers past CAPTURE_CONTAINERS_MAX or with an invalid name */
};

/* Adds key: the log text (raw from the kubelet) to c->data within this stream's share; false when out of
 * memory. */
static bool add_log(struct capture *c, const char *key, const char *raw, size_t raw_len)
{
    size_t streams = c->streams_left > 0 ? c->streams_left : 1, len;
    struct text_log_caps caps = {.stored_max = c->logs_left / streams,
                                 .wire_max = c->wire_left / streams,
                                 .cap_kib = CAPTURE_LOGS_MAX / 1024,
                                 .read_limit = CAPTURE_FETCH_MAX};
    char *value = text_log_tail(raw, raw_len, &caps, &len);
    if (value == NULL)
        return false;
    bool ok = cJSON_AddStringToObject(c->data, key, value) != NULL;
    size_t w = text_json_size(value, len);
    c->logs_left -= len < c->logs_left ? len : c->logs_left;
    c->wire_left -= w < c->wire_left ? w : c->wire_left;
    c->streams_left -= c->streams_left > 0;
    free(value);
    return ok;
}

/* Reads one log and adds it. A 400 (a container waiting to start, no previous container after all) is
 * kept as a note under the key; other failures end the action. */
static enum outcome capture_stream(struct capture *c, const char *container, bool previous, struct action_result *res)
{
    const struct capture_logs *p = c->pb->ctx;
    char path[768], key[128];
    snprintf(path, sizeof(path),
             "/api/v1/namespaces/%s/pods/%s/log?container=%s&tailLines=%ld&timestamps=true&limitBytes=%d%s", c->t->ns,
             c->t->pod, container, p->tail_lines, CAPTURE_FETCH_MAX, previous ? "&previous=true" : "");
    snprintf(key, sizeof(key), "%s%s.log", container, previous ? ".previous" : "");
    struct kube_response resp;
    kube_send(c->pb->env->kube, "GET", path, NULL, NULL, false, &resp);
    enum outcome o = OUTCOME_OK;
    if (resp.status == 200) {
        if (!add_log(c, key, resp.body ? resp.body : "", resp.body ? resp.body_len : 0))
            o = action_fail(res, true, "out of memory");
    } else if (resp.status == 400) {
        char note[300];
        int n = snprintf(note, sizeof(note), "[playbookd: no log: HTTP 400 (%s)]\n", resp.message);
        if (!add_log(c, key, note, n > 0 && (size_t)n < sizeof(note) ? (size_t)n : strlen(note)))
            o = action_fail(res, true, "out of memory");
    } else {
        o = playbook_kube_failure(&resp, previous ? "read previous log" : "read log", res);
    }
    kube_response_free(&resp);
    return o;
}

/* The restartCount of the container named name in the pod's status lists. */
static long restarts_of(const cJSON *status, const char *name)
{
    static const char *const lists[] = {"initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"};
    const cJSON *s;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        cJSON_ArrayForEach (s, cJSON_GetObjectItemCaseSensitive(status, lists[i])) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "restartCount");
            if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
                return cJSON_IsNumber(r) ? (long)r->valuedouble : 0;
        }
    }
    return 0;
}

/* The containers to read, as names in the pod (valid ones only, at most CAPTURE_CONTAINERS_MAX), each with
 * whether it restarted; returns how many. */
struct stream_list {
    const char *name[CAPTURE_CONTAINERS_MAX];
    bool restarted[CAPTURE_CONTAINERS_MAX];
    size_t n, reads;
};

static void list_containers(const cJSON *pod, struct stream_list *l, unsigned *not_captured)
{
    static const char *const kinds[] = {"initContainers", "containers", "ephemeralContainers"};
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(pod, "status"), *ct;
    memset(l, 0, sizeof(*l));
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        cJSON_ArrayForEach (ct, cJSON_GetObjectItemCaseSensitive(spec, kinds[k])) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(ct, "name");
            if (!cJSON_IsString(name) || !kube_name_label(name->valuestring) || l->n == CAPTURE_CONTAINERS_MAX) {
                (*not_captured)++;
                continue;
            }
            l->name[l->n] = name->valuestring;
            l->restarted[l->n] = restarts_of(status, name->valuestring) > 0;
            l->reads += l->restarted[l->n] ? 2 : 1;
            l->n++;
        }
    }
}

/* Reads every log of the pod into c->data. */
static enum outcome capture_pod_logs(struct capture *c, const cJSON *pod, struct action_result *res)
{
    struct stream_list l;
    list_containers(pod, &l, &c->not_captured);
    c->streams_left = l.reads;
    enum outcome o = OUTCOME_OK;
    for (size_t i = 0; i < l.n && o == OUTCOME_OK; i++) {
        o = capture_stream(c, l.name[i], false, res);
        if (o == OUTCOME_OK && l.restarted[i])
            o = capture_stream(c, l.name[i], true, res);
    }
    return o;
}

/* Adds alert.json (or alert.cut.json with what fits, when it is larger than CAPTURE_ALERT_MAX). */
static bool add_alert(struct capture *c, cJSON *annotations)
{
    size_t n = c->alert_len;
    size_t end = n <= CAPTURE_ALERT_MAX && text_json_size(c->alert, n) <= CAPTURE_ALERT_WIRE_MAX
                     ? n
                     : text_fit_prefix(c->alert, n, CAPTURE_ALERT_MAX, CAPTURE_ALERT_WIRE_MAX);
    char *value = malloc(end + 1);
    bool ok = value != NULL;
    if (ok) {
        memcpy(value, c->alert, end);
        value[end] = 0;
        ok = cJSON_AddStringToObject(c->data, end == n ? "alert.json" : "alert.cut.json", value) != NULL;
    }
    if (ok && end < n) {
        char note[96];
        snprintf(note, sizeof(note), "%zu of %zu bytes kept", end, n);
        ok = cJSON_AddStringToObject(annotations, "playbookd.io/alert-cut", note) != NULL;
    }
    free(value);
    return ok;
}

/* "-YYYYMMDDtHHMMSSz" from an RFC 3339 time, or "" when it is not one. */
static void compact_time(const char *t, char out[18])
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    out[0] = 0;
    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : !(t[i] == shape[i] || (i == 10 && t[i] == 't')))
            return; /* t ends (NUL) or differs here */
    snprintf(out, 18, "-%.4s%.2s%.2st%.2s%.2s%.2sz", t, t + 5, t + 8, t + 11, t + 14, t + 17);
}

/* POD-YYYYMMDDtHHMMSSz-HASH, the pod part cut so that the name fits CAPTURE_NAME_MAX; without a usable
 * alert time, POD-HASH. The hash is of the alert as received: a redelivery gives the same name. */
static void configmap_name(const struct capture *c, char *out, size_t size)
{
    char when[18], hash[HASH_HEX + 1];
    hash_hex(c->alert, c->alert_len, hash);
    compact_time(c->a->time, when);
    size_t room = CAPTURE_NAME_MAX - strlen(when) - 1 - HASH_HEX, n = strlen(c->t->pod);
    if (n > room)
        n = room;
    while (n > 0 && !alnum(c->t->pod[n - 1])) /* a name part ends alphanumeric */
        n--;
    snprintf(out, size, "%.*s%s-%s", (int)n, c->t->pod, when, hash);
}

/* metadata: name, namespace, labels (rule slug, namespace, pod: label values) and annotations (the full
 * rule, pod, alert time, playbook). */
static cJSON *configmap_metadata(const struct capture *c, const char *name, cJSON **annotations)
{
    const struct capture_logs *p = c->pb->ctx;
    char slug[ALERT_MAX_RULE + 1], value[64], pod[600], count[32];
    cJSON *meta = cJSON_CreateObject(), *labels = cJSON_AddObjectToObject(meta, "labels");
    *annotations = cJSON_AddObjectToObject(meta, "annotations");
    cJSON_AddStringToObject(meta, "name", name);
    cJSON_AddStringToObject(meta, "namespace", p->evidence_namespace);
    cJSON_AddStringToObject(labels, "app.kubernetes.io/managed-by", "playbookd");
    if (subject_slug(c->a->rule, slug, sizeof(slug)) > 0) {
        label_value(slug, value);
        cJSON_AddStringToObject(labels, "playbookd.io/rule", value);
    }
    cJSON_AddStringToObject(labels, "playbookd.io/namespace", c->t->ns);
    label_value(c->t->pod, value);
    cJSON_AddStringToObject(labels, "playbookd.io/pod", value);
    snprintf(pod, sizeof(pod), "%s/%s", c->t->ns, c->t->pod);
    cJSON_AddStringToObject(*annotations, "playbookd.io/rule", c->a->rule);
    cJSON_AddStringToObject(*annotations, "playbookd.io/pod", pod);
    if (c->t->uid != NULL)
        cJSON_AddStringToObject(*annotations, "playbookd.io/pod-uid", c->t->uid);
    cJSON_AddStringToObject(*annotations, "playbookd.io/alert-time", c->a->time);
    cJSON_AddStringToObject(*annotations, "playbookd.io/playbook", c->pb->name);
    if (c->not_captured > 0) {
        snprintf(count, sizeof(count), "%u", c->not_captured);
        cJSON_AddStringToObject(*annotations, "playbookd.io/containers-not-captured", count);
    }
    return meta;
}

/* The ConfigMap's JSON, taking c->data; NULL when out of memory. */
static char *configmap_body(struct capture *c, const char *name)
{
    cJSON *cm = cJSON_CreateObject(), *annotations = NULL;
    char *json = NULL;
    cJSON_AddStringToObject(cm, "apiVersion", "v1");
    cJSON_AddStringToObject(cm, "kind", "ConfigMap");
    cJSON_AddItemToObject(cm, "metadata", configmap_metadata(c, name, &annotations));
    cJSON_AddBoolToObject(cm, "immutable", true); /* evidence is not edited afterwards */
    if (annotations != NULL && add_alert(c, annotations)) {
        cJSON_AddItemToObject(cm, "data", c->data);
        c->data = NULL;
        json = cJSON_PrintUnformatted(cm);
    }
    cJSON_Delete(cm);
    return json;
}

/* Creates the ConfigMap: 201, or 409 (this alert's evidence is there already: a redelivery) is done. */
static enum outcome store(struct capture *c, struct action_result *res)
{
    const struct capture_logs *p = c->pb->ctx;
    char name[CAPTURE_NAME_MAX + 1], path[160];
    configmap_name(c, name, sizeof(name));
    if (!kube_name_subdomain(name))
        return action_fail(res, false, "no valid ConfigMap name for this pod and alert");
    char *body = configmap_body(c, name);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", p->evidence_namespace);
    struct kube_response resp;
    kube_send(c->pb->env->kube, "POST", path, "application/json", body, c->pb->dry_run, &resp);
    enum outcome o = playbook_changed(c->pb);
    snprintf(res->target, sizeof(res->target), "configmap %s/%s%s", p->evidence_namespace, name,
             resp.status == 409 ? " (already captured)" : "");
    if (resp.status == 201)
        playbook_record_event(c->pb, c->a, "Pod", c->t->ns, c->t->pod, c->t->uid, "CaptureLogs");
    else if (resp.status == 404)
        o = action_fail(res, false, "the evidence namespace %s does not exist: create it (HTTP 404: %s)",
                        p->evidence_namespace, resp.message);
    else if (resp.status != 409)
        o = playbook_kube_failure(&resp, "create configmap", res);
    kube_response_free(&resp);
    return o;
}

static enum outcome capture_logs_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    struct target t;
    struct kube_response pod;
    struct capture c = {.pb = pb, .a = a, .t = &t, .logs_left = CAPTURE_LOGS_MAX, .wire_left = CAPTURE_LOGS_WIRE_MAX};
    enum outcome o = target_pod(a, pb->env, &t, res);
    if (o != OUTCOME_OK)
        return o;
    c.printed = a->text == NULL ? cJSON_PrintUnformatted(a->root) : NULL; /* a copy is kept in dispatch */
    c.alert = a->text != NULL ? a->text : c.printed;
    c.alert_len = c.alert != NULL ? (a->text != NULL ? a->text_len : strlen(c.printed)) : 0;
    if (c.alert == NULL || (c.data = cJSON_CreateObject()) == NULL) {
        free(c.printed);
        return action_fail(res, true, "out of memory");
    }
    o = target_get_pod(pb->env->kube, &t, &pod, res);
    if (o == OUTCOME_OK)
        o = capture_pod_logs(&c, pod.json, res);
    kube_response_free(&pod);
    if (o == OUTCOME_OK)
        o = store(&c, res);
    cJSON_Delete(c.data);
    free(c.printed);
    return o;
}

/* GET the pod (its containers) and their logs; create the ConfigMap, in evidence_namespace only (a Role
 * there: rbac.c). */
static const struct rbac_rule capture_logs_rbac[] = {
    {.group = "", .resource = "pods", .verb = "get"},
    {.group = "", .resource = "pods/log", .verb = "get"},
    {.group = "", .resource = "configmaps", .verb = "create", .namespaced = true},
    {0},
};

static const char *capture_logs_rbac_namespace(const struct playbook *pb)
{
    const struct capture_logs *c = pb->ctx;
    return c->evidence_namespace;
}

const struct playbook_type playbook_capture_logs = {
    .name = "capture-logs",
    .needs_kube = true,
    .wants_alert_text = true,
    .rbac = capture_logs_rbac,
    .rbac_namespace = capture_logs_rbac_namespace,
    .find_target = target_pod,
    .params = capture_logs_params,
    .ctx_size = sizeof(struct capture_logs),
    .init = capture_logs_init,
    .run = capture_logs_run,
};
