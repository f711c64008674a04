/*
 * teams.c: the `teams` playbook. Posts the alert to a Microsoft Teams Workflows webhook as an Adaptive
 * Card (1.4) carrying what the Slack message carries: a title with the rule and priority, the alert's
 * facts, Falco's output, the actions of earlier playbooks, the dry-run mark. Teams reads markdown in
 * TextBlock text and in Fact titles and values, so every alert-derived string is escaped for it
 * (text_teams_escape): an attacker's command line cannot mention, link or format. The card carries no
 * msteams.entities, without which Teams makes no mention of <at> text anyway. The webhook URL is a
 * secret: it is never logged. Workflows answer 202 Accepted.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "playbookd/alert.h"
#include "playbookd/notify.h"
#include "playbookd/playbook.h"
#include "playbookd/text.h"

struct teams {
    char *webhook_url;
    enum priority min_priority;
    long timeout_ms;
};

static const struct param_spec teams_params[] = {
    {.name = "webhook_url", .type = PARAM_STRING, .required = true, .offset = offsetof(struct teams, webhook_url)},
    NOTIFY_PARAMS(struct teams),
    {0},
};

/* The title's colour by priority, among the Adaptive Card colours. */
static const char *const colors[PRIORITY_COUNT] = {
    "Attention", "Attention", "Attention", "Attention", "Warning", "Accent", "Default", "Default",
};

static int teams_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    const struct teams *t = pb->ctx;
    return notify_url_check(params, "webhook_url", t->webhook_url, err);
}

/* Appends {"type": "TextBlock", "text": text, "wrap": true} to body; returns it (NULL when out of memory). */
static cJSON *add_text(cJSON *body, const char *text)
{
    cJSON *tb = cJSON_CreateObject();
    if (tb == NULL || !cJSON_AddItemToArray(body, tb)) {
        cJSON_Delete(tb);
        return NULL;
    }
    cJSON_AddStringToObject(tb, "type", "TextBlock");
    cJSON_AddStringToObject(tb, "text", text);
    cJSON_AddBoolToObject(tb, "wrap", true);
    return tb;
}

/* Appends a TextBlock of text escaped (at most max bytes of it); returns it, or NULL. */
static cJSON *add_escaped_text(cJSON *body, const char *text, size_t max)
{
    char *escaped = text_teams_escape(text, max);
    cJSON *tb = escaped != NULL ? add_text(body, escaped) : NULL;
    free(escaped);
    return tb;
}

/* Appends {"title": title, "value": value escaped} to facts; value NULL: nothing. */
static void add_fact(cJSON *facts, const char *title, const char *value)
{
    char *escaped = value != NULL ? text_teams_escape(value, NOTIFY_FIELD_MAX) : NULL;
    cJSON *f = escaped != NULL ? cJSON_CreateObject() : NULL;
    if (f != NULL && cJSON_AddItemToArray(facts, f)) {
        cJSON_AddStringToObject(f, "title", title);
        cJSON_AddStringToObject(f, "value", escaped);
    } else {
        cJSON_Delete(f);
    }
    free(escaped);
}

/* The FactSet: the alert's facts and how many alerts a cooldown held back. */
static void add_facts(cJSON *body, const struct playbook *pb, const struct alert *a, const struct action_result *res)
{
    struct notify_facts facts;
    char suppressed[128];
    cJSON *set = cJSON_CreateObject(), *list = cJSON_CreateArray();
    if (set == NULL || list == NULL || !cJSON_AddItemToArray(body, set)) {
        cJSON_Delete(set);
        cJSON_Delete(list);
        return;
    }
    cJSON_AddStringToObject(set, "type", "FactSet");
    cJSON_AddItemToObject(set, "facts", list);
    notify_alert_facts(a, &facts);
    for (size_t i = 0; i < facts.n; i++)
        add_fact(list, facts.items[i].title, facts.items[i].value);
    add_fact(list, "Suppressed", notify_suppressed_text(pb, res, suppressed, sizeof(suppressed)));
}

/* "Actions", then one line per action already run for this alert. */
static void add_actions(cJSON *body, const struct action_result *res)
{
    char line[NOTIFY_LINE_MAX];
    cJSON *head = res->n_before > 0 ? add_text(body, "Actions") : NULL;
    if (head != NULL)
        cJSON_AddStringToObject(head, "weight", "Bolder");
    for (size_t i = 0; head != NULL && i < res->n_before; i++) {
        cJSON *tb = add_escaped_text(body, notify_action_line(&res->before[i], line, sizeof(line)), sizeof(line));
        if (tb != NULL)
            cJSON_AddStringToObject(tb, "spacing", "None");
    }
}

/* The card's body elements. */
static void add_body(cJSON *body, const struct playbook *pb, const struct alert *a, const struct action_result *res)
{
    char title[NOTIFY_FIELD_MAX * 7 + 64];
    char *rule = text_teams_escape(a->rule, NOTIFY_FIELD_MAX);
    cJSON *head =
        rule != NULL ? add_text(body, notify_title(title, sizeof(title), pb, a, rule, "", "\\[DRY RUN\\] ")) : NULL;
    free(rule);
    if (head != NULL) {
        cJSON_AddStringToObject(head, "size", "Medium");
        cJSON_AddStringToObject(head, "weight", "Bolder");
        cJSON_AddStringToObject(head, "color", colors[a->priority]);
    }
    add_facts(body, pb, a, res);
    if (a->output[0] != 0)
        add_escaped_text(body, a->output, NOTIFY_OUTPUT_MAX);
    add_actions(body, res);
    cJSON *foot = add_text(body, pb->dry_run ? "playbookd (dry run)" : "playbookd");
    if (foot != NULL)
        cJSON_AddBoolToObject(foot, "isSubtle", true);
}

/* The message: {"type": "message", "attachments": [{contentType, content: AdaptiveCard}]}; NULL when out
 * of memory. */
static char *build_message(const struct playbook *pb, const struct alert *a, const struct action_result *res)
{
    cJSON *msg = cJSON_CreateObject(), *atts = cJSON_CreateArray(), *att = cJSON_CreateObject();
    cJSON *card = cJSON_CreateObject(), *body = cJSON_CreateArray();
    char *json = NULL;
    if (msg == NULL || atts == NULL || att == NULL || card == NULL || body == NULL)
        goto out;
    cJSON_AddStringToObject(card, "$schema", "http://adaptivecards.io/schemas/adaptive-card.json");
    cJSON_AddStringToObject(card, "type", "AdaptiveCard");
    cJSON_AddStringToObject(card, "version", "1.4");
    add_body(body, pb, a, res);
    cJSON_AddItemToObject(card, "body", body);
    body = NULL;
    cJSON_AddStringToObject(att, "contentType", "application/vnd.microsoft.card.adaptive");
    cJSON_AddItemToObject(att, "content", card);
    card = NULL;
    cJSON_AddItemToArray(atts, att);
    att = NULL;
    cJSON_AddStringToObject(msg, "type", "message");
    cJSON_AddItemToObject(msg, "attachments", atts);
    atts = NULL;
    json = cJSON_PrintUnformatted(msg);
out:
    cJSON_Delete(body);
    cJSON_Delete(card);
    cJSON_Delete(att);
    cJSON_Delete(atts);
    cJSON_Delete(msg);
    return json;
}

static enum outcome teams_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    const struct teams *t = pb->ctx;
    if (notify_priority_check(a, t->min_priority, res) != OUTCOME_OK)
        return OUTCOME_SKIPPED;
    return notify_post(t->webhook_url, NULL, 0, build_message(pb, a, res), t->timeout_ms, res);
}

/* A notification: it calls no Kubernetes API, so it needs no RBAC (rbac NULL). */
const struct playbook_type playbook_teams = {
    .name = "teams",
    .cooldown_per_rule = true,
    .params = teams_params,
    .ctx_size = sizeof(struct teams),
    .init = teams_init,
    .run = teams_run,
};
