/*
 * webhook.c: the `webhook` playbook. POSTs {"alert": the alert as received, "actions": what earlier
 * playbooks did for it, "dry_run": bool} to `url`, with optional `headers` (values may use ${VAR}: a token
 * from the environment). The alert is the JSON text as it came, so numbers beyond 2^53 (Falco's
 * nanosecond evt.time) stay exact. The URL and the header values may hold secrets: they are never logged,
 * and a configuration error names the header, never its value. Header names are HTTP tokens; values carry
 * no control characters (no CR/LF: no header injection); Content-Type, Content-Length, Host,
 * Transfer-Encoding, Connection and Expect belong to playbookd and cannot be set.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "playbookd/alert.h"
#include "playbookd/notify.h"
#include "playbookd/playbook.h"

#define HEADERS_MAX 32
#define HEADER_NAME_MAX 128
#define HEADER_VALUE_MAX 8192

struct webhook {
    char *url;
    const struct config_node *headers_node; /* declared for the table; init reads the map from params */
    enum priority min_priority;
    long timeout_ms;
    char *headers[HEADERS_MAX]; /* "Name: value", malloc'd */
    size_t n_headers;
};

static const struct param_spec webhook_params[] = {
    {.name = "url", .type = PARAM_STRING, .required = true, .offset = offsetof(struct webhook, url)},
    {.name = "headers", .type = PARAM_NODE, .offset = offsetof(struct webhook, headers_node)},
    NOTIFY_PARAMS(struct webhook),
    {0},
};

/* Headers that say how the body is framed or where it goes: playbookd's own. */
static const char *const reserved[] = {
    "Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "Expect", NULL,
};

/* An HTTP token (RFC 9110 section 5.6.2): the characters of a header name. */
static bool is_token(const char *s)
{
    if (*s == 0)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* A field value: no control characters but tab (CR, LF and NUL would end the header or forge another). */
static bool is_field_value(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* Checks header i of the map and stores it as "Name: value". */
static int add_header(struct webhook *w, const struct config_node *h, struct error *err)
{
    if (strlen(h->key) > HEADER_NAME_MAX || !is_token(h->key))
        return config_key_error(err, h, "not a valid HTTP header name");
    for (const char *const *r = reserved; *r != NULL; r++)
        if (strcasecmp(h->key, *r) == 0)
            return config_key_error(err, h, "playbookd sets this header itself");
    for (size_t i = 0; i < w->n_headers; i++)
        if (strncasecmp(w->headers[i], h->key, strlen(h->key)) == 0 && w->headers[i][strlen(h->key)] == ':')
            return config_key_error(err, h, "header given twice (names are case-insensitive)");
    if (h->kind != NODE_SCALAR)
        return config_node_error(err, h, "a header value must be a string");
    if (strlen(h->value) > HEADER_VALUE_MAX || !is_field_value(h->value))
        return config_node_error(err, h, "the value must be at most %d bytes without control characters",
                                 HEADER_VALUE_MAX);
    size_t len = strlen(h->key) + strlen(h->value) + 3;
    if ((w->headers[w->n_headers] = malloc(len)) == NULL)
        return config_node_error(err, h, "out of memory");
    snprintf(w->headers[w->n_headers++], len, "%s: %s", h->key, h->value);
    return 0;
}

static int webhook_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    struct webhook *w = pb->ctx;
    const struct config_node *map = config_node_get(params, "headers"); /* headers_node points into a copy */
    if (notify_url_check(params, "url", w->url, err) != 0)
        return -1;
    if (map == NULL)
        return 0;
    if (map->kind != NODE_MAP)
        return config_node_error(err, map, "headers must be a map of header names to values");
    if (map->n_children > HEADERS_MAX)
        return config_node_error(err, map, "at most %d headers", HEADERS_MAX);
    for (size_t i = 0; i < map->n_children; i++)
        if (add_header(w, &map->children[i], err) != 0)
            return -1;
    return 0;
}

static void webhook_destroy(struct playbook *pb)
{
    struct webhook *w = pb->ctx;
    for (size_t i = 0; w != NULL && i < w->n_headers; i++)
        free(w->headers[i]);
}

/* A string member, or null when s is empty. */
static void add_text_or_null(cJSON *obj, const char *key, const char *s)
{
    if (s[0] != 0)
        cJSON_AddStringToObject(obj, key, s);
    else
        cJSON_AddNullToObject(obj, key);
}

/* [{playbook, type, outcome, reason, target}] of the actions already run for this alert. */
static cJSON *actions_json(const struct action_result *res)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; list != NULL && i < res->n_before; i++) {
        const struct action_record *r = &res->before[i];
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(list, o)) {
            cJSON_Delete(o);
            break;
        }
        cJSON_AddStringToObject(o, "playbook", r->playbook->name);
        cJSON_AddStringToObject(o, "type", r->playbook->type->name);
        cJSON_AddStringToObject(o, "outcome", outcome_name(r->outcome));
        add_text_or_null(o, "reason", r->reason);
        add_text_or_null(o, "target", r->target);
    }
    return list;
}

/* The body; malloc'd JSON text, or NULL when out of memory. */
static char *build_document(const struct playbook *pb, const struct alert *a, const struct action_result *res)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *alert = a->text != NULL ? cJSON_CreateRaw(a->text) : cJSON_Duplicate(a->root, true);
    cJSON *actions = actions_json(res);
    char *json = NULL;
    if (doc == NULL || alert == NULL || actions == NULL)
        goto out;
    cJSON_AddItemToObject(doc, "alert", alert);
    alert = NULL;
    cJSON_AddItemToObject(doc, "actions", actions);
    actions = NULL;
    cJSON_AddBoolToObject(doc, "dry_run", pb->dry_run);
    json = cJSON_PrintUnformatted(doc);
out:
    cJSON_Delete(alert);
    cJSON_Delete(actions);
    cJSON_Delete(doc);
    return json;
}

static enum outcome webhook_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    const struct webhook *w = pb->ctx;
    if (notify_priority_check(a, w->min_priority, res) != OUTCOME_OK)
        return OUTCOME_SKIPPED;
    return notify_post(w->url, (const char *const *)w->headers, w->n_headers, build_document(pb, a, res), w->timeout_ms,
                       res);
}

/* A notification: it calls no Kubernetes API, so it needs no RBAC (rbac NULL). */
const struct playbook_type playbook_webhook = {
    .name = "webhook",
    .cooldown_per_rule = true,
    .wants_alert_text = true,
    .params = webhook_params,
    .ctx_size = sizeof(struct webhook),
    .init = webhook_init,
    .run = webhook_run,
    .destroy = webhook_destroy,
};
