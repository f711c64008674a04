/*
 * dispatch.h: from a message to actions. Parses the alert once, finds every topic whose pattern matches
 * its subject, runs each mapped playbook once in config order, retries transient failures, logs one line
 * per action and returns the alert's overall outcome.
 */
#ifndef PLAYBOOKD_DISPATCH_H
#define PLAYBOOKD_DISPATCH_H

#include <stddef.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/playbook.h"

/* What happened to one message. */
enum dispatch_status {
    DISPATCH_DONE,     /* every action ended ok, dry-run or skipped (or none matched) */
    DISPATCH_FAILED,   /* at least one action failed */
    DISPATCH_REJECTED, /* not a valid alert: logged and counted */
};

struct dispatcher;

/* Called after each action, e.g. by --replay to print a result line. */
typedef void (*dispatch_report_fn)(void *arg, const char *subject, const struct playbook *pb, enum outcome o,
                                   const char *reason);

/* Retries follow cfg->retry. */
int dispatcher_create(struct dispatcher **out, const struct config *cfg, dispatch_report_fn report, void *report_arg);
void dispatcher_destroy(struct dispatcher *d);

/* From now on, a failed action is not tried again: the process is stopping (an attempt under way ends). */
void dispatcher_stop(struct dispatcher *d);

/*
 * Handles one raw message. subject NULL: derived from the alert (replay). origin names where the message
 * came from in log lines ("nats", "line 12").
 */
enum dispatch_status dispatch_message(struct dispatcher *d, const char *subject, const char *data, size_t len,
                                      const char *origin);

#endif
