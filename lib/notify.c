/*
 * notify.c: the facts of an alert that every notification shows, the list of earlier actions, the
 * webhook-URL check and the POST with its status mapped to an outcome (slack.c, teams.c, webhook.c).
 */
#include "playbookd/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/http.h"

static void add_fact(struct notify_facts *f, const char *title, const char *value)
{
    if (value == NULL || *value == 0 || f->n >= NOTIFY_FACTS_MAX)
        return;
    f->items[f->n].title = title;
    f->items[f->n].value = value;
    f->n++;
}

void notify_alert_facts(const struct alert *a, struct notify_facts *f)
{
    const char *container = alert_field(a, "container.name", f->bufs[0], sizeof(f->bufs[0]));
    if (container == NULL)
        container = alert_field(a, "container.id", f->bufs[0], sizeof(f->bufs[0]));
    f->n = 0;
    add_fact(f, "Rule", a->rule);
    add_fact(f, "Priority", priority_name(a->priority));
    add_fact(f, "Time", a->time);
    add_fact(f, "Hostname", a->hostname);
    add_fact(f, "Namespace", alert_field(a, "k8s.ns.name", f->bufs[1], sizeof(f->bufs[1])));
    add_fact(f, "Pod", alert_field(a, "k8s.pod.name", f->bufs[2], sizeof(f->bufs[2])));
    add_fact(f, "Container", container);
    add_fact(f, "Image", alert_field(a, "container.image.repository", f->bufs[3], sizeof(f->bufs[3])));
    add_fact(f, "Source", a->source);
}

char *notify_title(char *buf, size_t size, const struct playbook *pb, const struct alert *a, const char *rule,
                   const char *bold, const char *dry_mark)
{
    snprintf(buf, size, "%sFalco alert: %s%s%s (%s)", pb->dry_run ? dry_mark : "", bold, rule, bold,
             priority_name(a->priority));
    return buf;
}

char *notify_action_line(const struct action_record *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s (%s): %s%s%s%s%s%s", r->playbook->name, r->playbook->type->name, outcome_name(r->outcome),
             r->reason[0] ? " (" : "", r->reason, r->reason[0] ? ")" : "", r->target[0] ? " on " : "", r->target);
    return buf;
}

char *notify_actions_text(const struct action_result *res, char *buf, size_t size)
{
    char line[NOTIFY_LINE_MAX];
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < res->n_before && n < size - 1; i++) {
        int m =
            snprintf(buf + n, size - n, "%s%s", i ? "\n" : "", notify_action_line(&res->before[i], line, sizeof(line)));
        n += m < 0 ? 0 : (size_t)m;
    }
    return buf;
}

const char *notify_suppressed_text(const struct playbook *pb, const struct action_result *res, char *buf, size_t size)
{
    if (res->suppressed == 0)
        return NULL;
    snprintf(buf, size, "%lu similar alert%s not posted during the %lds cooldown", res->suppressed,
             res->suppressed == 1 ? "" : "s", pb->cooldown_ms / 1000);
    return buf;
}

enum outcome notify_priority_check(const struct alert *a, enum priority min_priority, struct action_result *res)
{
    if (a->priority > min_priority)
        return action_skip(res, "priority %s below min_priority %s", priority_name(a->priority),
                           priority_name(min_priority));
    return OUTCOME_OK;
}

int notify_url_check(const struct config_node *params, const char *key, const char *url, struct error *err)
{
    struct error why;
    if (http_url_check(url, &why) != 0)
        return config_node_error(err, config_node_get(params, key), "%s", why.msg);
    return 0;
}

enum outcome notify_post(const char *url, const char *const *headers, size_t n_headers, char *body, long timeout_ms,
                         struct action_result *res)
{
    if (body == NULL)
        return action_fail(res, true, "out of memory");
    struct http_request req = {
        .method = "POST",
        .url = url,
        .content_type = "application/json",
        .body = body,
        .body_len = strlen(body),
        .headers = headers,
        .n_headers = n_headers,
        .timeout_ms = timeout_ms,
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
