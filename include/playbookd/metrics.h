/* metrics.h: process-wide counters, updated lock-free from any thread. */
#ifndef PLAYBOOKD_METRICS_H
#define PLAYBOOKD_METRICS_H

#include "playbookd/playbook.h"

struct metrics_snapshot {
    unsigned long alerts_received;
    unsigned long alerts_rejected;
    unsigned long actions[OUTCOME_COUNT];
};

void metrics_alert_received(void);
unsigned long metrics_alert_rejected(void); /* returns the new total */
void metrics_action(enum outcome o);
void metrics_snapshot(struct metrics_snapshot *out);

#endif
