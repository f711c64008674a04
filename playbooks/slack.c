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
#include "playbookd/notify.h"
#include "playbookd/playbook.h"
#include "playbookd/text.h"

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
    NOTIFY_PARAMS(struct slack),
    {0},
};

/* The colours falcosidekick uses, by priority. */
static const char *const colors[PRIORITY_COUNT] = {
    "#e20b0b", "#ff5400", "#ff9000", "#ffc700", "#ffff00", "#5bffb5", "#68c2ff", "#ccfffb",
};

static int slack_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    const struct slack *s = pb->ctx;
    return notify_url_check(params, "webhook_url", s->webhook_url, err);
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

/* The alert's facts; then the actions already run for it, and how many alerts a cooldown held back. */
static void add_fields(cJSON *fields, const struct playbook *pb, const struct alert *a, const struct action_result *res)
{
    struct notify_facts facts;
    char actions[NOTIFY_ACTIONS_MAX], suppressed[128];
    notify_alert_facts(a, &facts);
    for (size_t i = 0; i < facts.n; i++)
        add_field_sized(fields, facts.items[i].title, facts.items[i].value, NOTIFY_FIELD_MAX, true);
    add_field_sized(fields, "Actions", notify_actions_text(res, actions, sizeof(actions)), sizeof(actions), false);
    add_field_sized(fields, "Suppressed", notify_suppressed_text(pb, res, suppressed, sizeof(suppressed)),
                    sizeof(suppressed), false);
}

/* The webhook body; malloc'd JSON text, or NULL when out of memory. */
static char *build_message(const struct slack *s, const struct playbook *pb, const struct alert *a,
                           const struct action_result *res)
{
    char *rule = text_slack_escape(a->rule, NOTIFY_FIELD_MAX);
    char *output = text_slack_escape(a->output, NOTIFY_OUTPUT_MAX);
    cJSON *msg = cJSON_CreateObject(), *att = cJSON_CreateObject(), *atts = cJSON_CreateArray();
    cJSON *fields = cJSON_CreateArray();
    char *json = NULL, title[NOTIFY_FIELD_MAX * 5 + 64];
    if (rule == NULL || output == NULL || msg == NULL || att == NULL || atts == NULL || fields == NULL)
        goto out;
    notify_title(title, sizeof(title), pb, a, rule, "*", "[DRY RUN] ");
    cJSON_AddStringToObject(msg, "text", title);
    cJSON_AddStringToObject(msg, "username", s->username);
    if (s->channel != NULL)
        cJSON_AddStringToObject(msg, "channel", s->channel);
    cJSON_AddStringToObject(att, "fallback", title);
    cJSON_AddStringToObject(att, "color", colors[a->priority]);
    cJSON_AddStringToObject(att, "text", output);
    add_fields(fields, pb, a, res);
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
    if (notify_priority_check(a, s->min_priority, res) != OUTCOME_OK)
        return OUTCOME_SKIPPED;
    return notify_post(s->webhook_url, NULL, 0, build_message(s, pb, a, res), s->timeout_ms, res);
}

const struct playbook_type playbook_slack = {
    .name = "slack",
    .cooldown_per_rule = true,
    .params = slack_params,
    .ctx_size = sizeof(struct slack),
    .init = slack_init,
    .run = slack_run,
};
