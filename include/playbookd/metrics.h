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
};

void metrics_alert_received(void);
unsigned long metrics_alert_rejected(void); /* returns the new total */
/* One action of a playbook ended; seconds is how long it took, retries included. */
void metrics_action(const struct playbook *pb, enum outcome o, double seconds);
void metrics_nats_connected(bool connected);
void metrics_nats_reconnected(void);
void metrics_config_reload(bool ok);
void metrics_snapshot(struct metrics_snapshot *out);

/* The Prometheus text exposition; malloc'd, or NULL when out of memory. */
char *metrics_render(size_t *len);

#endif
