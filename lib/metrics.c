/* metrics.c: process-wide counters (relaxed atomics: they are counts, not synchronisation). */
#include "playbookd/metrics.h"

#include <stdatomic.h>

static atomic_ulong alerts_received, alerts_rejected;
static atomic_ulong actions[OUTCOME_COUNT];

void metrics_alert_received(void)
{
    atomic_fetch_add_explicit(&alerts_received, 1, memory_order_relaxed);
}

unsigned long metrics_alert_rejected(void)
{
    return atomic_fetch_add_explicit(&alerts_rejected, 1, memory_order_relaxed) + 1;
}

void metrics_action(enum outcome o)
{
    if ((unsigned)o < OUTCOME_COUNT)
        atomic_fetch_add_explicit(&actions[o], 1, memory_order_relaxed);
}

void metrics_snapshot(struct metrics_snapshot *out)
{
    out->alerts_received = atomic_load_explicit(&alerts_received, memory_order_relaxed);
    out->alerts_rejected = atomic_load_explicit(&alerts_rejected, memory_order_relaxed);
    for (int i = 0; i < OUTCOME_COUNT; i++)
        out->actions[i] = atomic_load_explicit(&actions[i], memory_order_relaxed);
}
