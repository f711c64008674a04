/*
 * slack.c: the `slack` playbook. Posts the alert to a Slack incoming webhook: rule, priority (coloured),
 * time, host, namespace, pod, container and Falco's output. Every alert-derived string is escaped, so an
 * attacker's command line cannot mention <!channel> or forge a link. The webhook URL is a secret: it is
 * never logged.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/alert.h"
#include "playbookd/http.h"
#include "playbookd/playbook.h"
#include "playbookd/text.h"

#define OUTPUT_MAX 3000 /* bytes of Falco output shown; Slack cuts long messages anyway */
#define FIELD_MAX 256

struct slack {
    char *webhook_url;
    char *channel;
    char *username;
    enum priority min_priority;
    long timeout_ms;
};

static const struct param_spec slack_params[] = {
    {.name = "webhook_url", .type = PARAM_STRING, .required = true, .offset = offsetof(struct slack, webhook_url)},
    {.name = "channel", .type = PARAM_STRING, .offset = offsetof(struct slack, channel)},
    {.name = "username", .type = PARAM_STRING, .def = "playbookd", .offset = offsetof(struct slack, username)},
    {.name = "min_priority", .type = PARAM_PRIORITY, .def = "Debug", .offset = offsetof(struct slack, min_priority)},
    {.name = "timeout_ms",
     .type = PARAM_INT,
     .def = "10000",
     .offset = offsetof(struct slack, timeout_ms),
     .min = 100,
     .max = 60000},
    {0},
};

/* The colours falcosidekick uses, by priority. */
static const char *const colors[PRIORITY_COUNT] = {
    "#e20b0b", "#ff5400", "#ff9000", "#ffc700", "#ffff00", "#5bffb5", "#68c2ff", "#ccfffb",
};

static int slack_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    const struct slack *s = pb->ctx;
    struct error why;
    if (http_url_check(s->webhook_url, &why) != 0)
        return config_node_error(err, config_node_get(params, "webhook_url"), "%s", why.msg);
    return 0;
}

/* Adds {"title": title, "value": escaped text, "short": is_short} unless text is NULL or empty. */
static void add_field_sized(cJSON *fields, const char *title, const char *text, size_t max, bool is_short)
{
    if (text == NULL || *text == 0)
        return;
    char *escaped = text_slack_escape(text, max);
    cJSON *f = cJSON_CreateObject();
    if (escaped == NULL || f == NULL || !cJSON_AddItemToArray(fields, f)) {
        free(escaped);
        cJSON_Delete(f);
        return;
    }
    cJSON_AddStringToObject(f, "title", title);
    cJSON_AddStringToObject(f, "value", escaped);
    cJSON_AddBoolToObject(f, "short", is_short);
    free(escaped);
}

static void add_field(cJSON *fields, const char *title, const char *text)
{
    add_field_sized(fields, title, text, FIELD_MAX, true);
}

static void add_alert_fields(cJSON *fields, const struct alert *a)
{
    char b1[64], b2[64], b3[64], b4[64];
    const char *container = alert_field(a, "container.name", b1, sizeof(b1));
    if (container == NULL)
        container = alert_field(a, "container.id", b1, sizeof(b1));
    add_field(fields, "Rule", a->rule);
    add_field(fields, "Priority", priority_name(a->priority));
    add_field(fields, "Time", a->time);
    add_field(fields, "Hostname", a->hostname);
    add_field(fields, "Namespace", alert_field(a, "k8s.ns.name", b2, sizeof(b2)));
    add_field(fields, "Pod", alert_field(a, "k8s.pod.name", b3, sizeof(b3)));
    add_field(fields, "Container", container);
    add_field(fields, "Image", alert_field(a, "container.image.repository", b4, sizeof(b4)));
    add_field(fields, "Source", a->source);
}

/* One line per action already run for this alert: what was done, or would have been in dry run. */
/* After a cooldown window: how many alerts like this one were not posted. */
static void add_suppressed_field(cJSON *fields, const struct playbook *pb, const struct action_result *res)
{
    char text[128];
    if (res->suppressed == 0)
        return;
    snprintf(text, sizeof(text), "%lu similar alert%s not posted during the %lds cooldown", res->suppressed,
             res->suppressed == 1 ? "" : "s", pb->cooldown_ms / 1000);
    add_field_sized(fields, "Suppressed", text, sizeof(text), false);
}

static void add_actions_field(cJSON *fields, const struct action_result *res)
{
    char text[2048] = "", line[ACTION_REASON_MAX + ACTION_TARGET_MAX + 128];
    size_t n = 0;
    for (size_t i = 0; i < res->n_before && n < sizeof(text) - 1; i++) {
        const struct action_record *r = &res->before[i];
        snprintf(line, sizeof(line), "%s%s (%s): %s%s%s%s%s%s", i ? "\n" : "", r->playbook->name,
                 r->playbook->type->name, outcome_name(r->outcome), r->reason[0] ? " (" : "", r->reason,
                 r->reason[0] ? ")" : "", r->target[0] ? " on " : "", r->target);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s", line);
    }
    add_field_sized(fields, "Actions", text, sizeof(text), false);
}

/* The webhook body; malloc'd JSON text, or NULL when out of memory. */
static char *build_message(const struct slack *s, const struct playbook *pb, const struct alert *a,
                           const struct action_result *res)
{
    char *rule = text_slack_escape(a->rule, FIELD_MAX);
    char *output = text_slack_escape(a->output, OUTPUT_MAX);
    cJSON *msg = cJSON_CreateObject(), *att = cJSON_CreateObject(), *atts = cJSON_CreateArray();
    cJSON *fields = cJSON_CreateArray();
    char *json = NULL, title[FIELD_MAX * 5 + 64];
    if (rule == NULL || output == NULL || msg == NULL || att == NULL || atts == NULL || fields == NULL)
        goto out;
    snprintf(title, sizeof(title), "%sFalco alert: *%s* (%s)", pb->dry_run ? "[DRY RUN] " : "", rule,
             priority_name(a->priority));
    cJSON_AddStringToObject(msg, "text", title);
    cJSON_AddStringToObject(msg, "username", s->username);
    if (s->channel != NULL)
        cJSON_AddStringToObject(msg, "channel", s->channel);
    cJSON_AddStringToObject(att, "fallback", title);
    cJSON_AddStringToObject(att, "color", colors[a->priority]);
    cJSON_AddStringToObject(att, "text", output);
    add_alert_fields(fields, a);
    add_actions_field(fields, res);
    add_suppressed_field(fields, pb, res);
    cJSON_AddItemToObject(att, "fields", fields);
    fields = NULL;
    cJSON_AddStringToObject(att, "footer", pb->dry_run ? "playbookd (dry run)" : "playbookd");
    cJSON_AddItemToArray(atts, att);
    att = NULL;
    cJSON_AddItemToObject(msg, "attachments", atts);
    atts = NULL;
    json = cJSON_PrintUnformatted(msg);
out:
    cJSON_Delete(fields);
    cJSON_Delete(att);
    cJSON_Delete(atts);
    cJSON_Delete(msg);
    free(rule);
    free(output);
    return json;
}

static enum outcome slack_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    const struct slack *s = pb->ctx;
    if (a->priority > s->min_priority)
        return action_skip(res, "priority %s below min_priority %s", priority_name(a->priority),
                           priority_name(s->min_priority));
    char *body = build_message(s, pb, a, res);
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    struct http_request req = {
        .method = "POST",
        .url = s->webhook_url,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = s->timeout_ms,
    };
    struct http_response resp;
    struct error err;
    enum outcome o = OUTCOME_OK;
    if (http_send(&req, &resp, &err) != 0) {
        o = action_fail(res, true, "%s", err.msg);
    } else if (resp.status < 200 || resp.status > 299) {
        bool transient = resp.status == 429 || resp.status >= 500;
        o = action_fail(res, transient, "HTTP %ld", resp.status);
        res->retry_after_ms = resp.retry_after_s * 1000;
    }
    http_response_free(&resp);
    free(body);
    return o;
}

const struct playbook_type playbook_slack = {
    .name = "slack",
    .cooldown_per_rule = true,
    .params = slack_params,
    .ctx_size = sizeof(struct slack),
    .init = slack_init,
    .run = slack_run,
};
