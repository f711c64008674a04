/*
 * metrics.h: process-wide counters and the action latency histogram, updated from any thread, rendered
 * in the Prometheus text format for /metrics.
 */
#ifndef PLAYBOOKD_METRICS_H
#define PLAYBOOKD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "playbookd/playbook.h"

struct metrics_snapshot {
    unsigned long alerts_received;
    unsigned long alerts_rejected;
    unsigned long actions[OUTCOME_COUNT];
    unsigned long dropped_slow_consumer, dropped_shutdown, dropped_max_deliver;
    unsigned long events_ok, events_failed, events_dropped;
    unsigned long cooldown_skipped, cooldown_evicted;
};

void metrics_alert_received(void);
unsigned long metrics_alert_rejected(void); /* returns the new total */
/* One action of a playbook ended; seconds is how long it took, retries included. */
void metrics_action(const struct playbook *pb, enum outcome o, double seconds);
/* Alerts received but never run: reason is "slow_consumer", "shutdown" or "max_deliver". */
void metrics_alerts_dropped(const char *reason, unsigned long n);
/* A Kubernetes Event: result is "ok", "failed" or "dropped" (its queue was full). */
void metrics_event(const char *result);
/* An action skipped because its playbook's cooldown held the key; and cooldown keys evicted (table full). */
void metrics_cooldown_skipped(void);
void metrics_cooldown_evicted(unsigned long n);
/* An action of pb skipped by a rate limit: its playbook's own, or (global) the one of all mutating playbooks. */
void metrics_rate_limited(const struct playbook *pb, bool global);
/*
 * Matches per rule (a topic counts under its pattern): a rule's counter, found or added by name (so it
 * goes on across reloads), is the slot metrics_rule_matched takes; -1 when the table of METRICS_MAX_RULES
 * names is full, and then its matches are counted under rule="(other)". Prometheus label values escaped.
 */
#define METRICS_MAX_RULES 512
int metrics_rule_slot(const char *name);
void metrics_rule_matched(int slot);
/* The count of a rule by name (tests). */
unsigned long metrics_rule_matches(const char *name);

/* Alerts waiting for a worker now (a gauge). */
void metrics_queue_depth(long delta);
void metrics_nats_connected(bool connected);
void metrics_nats_reconnected(void);
void metrics_config_reload(bool ok);
/* The HTTP endpoint: connections open now (a gauge), and connections it closed to stay available, by
 * reason: "per_ip_limit", "total_limit" or "deadline" (httpd.h). */
void metrics_http_connections(long delta);
void metrics_http_closed(const char *reason);
/* The alert input (httpin.h): result "accepted" counts alerts queued (or stored in JetStream); "rejected",
 * "unauthorized", "too_large" and "busy" count the requests answered 400, 401, 413 and 503. */
void metrics_http_alerts(const char *result, unsigned long n);
void metrics_snapshot(struct metrics_snapshot *out);

/* The Prometheus text exposition; malloc'd, or NULL when out of memory. */
char *metrics_render(size_t *len);

#endif
