/*
 * dispatch.h: from a message to actions. Receiving parses the alert once and matches it against every
 * topic and rule in order (dispatch_submit); a worker then runs each mapped playbook once in config
 * order, applies cooldowns and rate limits, retries transient failures, logs one line per action and
 * tells the input how the alert ended, so that JetStream can ack, nak or term it.
 */
#ifndef PLAYBOOKD_DISPATCH_H
#define PLAYBOOKD_DISPATCH_H

#include <stddef.h>
#include <stdio.h>

#include "playbookd/alert.h"
#include "playbookd/config.h"
#include "playbookd/playbook.h"
#include "playbookd/subject.h"

/* What happened to one message. */
enum dispatch_status {
    DISPATCH_DONE,     /* every action ended ok, dry-run or skipped (or none matched) */
    DISPATCH_RETRY,    /* an action still failed transiently after the retries: worth delivering again */
    DISPATCH_FAILED,   /* an action failed for good (no retry can help) */
    DISPATCH_REJECTED, /* not a valid alert: logged and counted */
    DISPATCH_DROPPED,  /* received, never run: the process stopped first */
    DISPATCH_QUEUED,   /* (dispatch_submit only) handed to a worker: `done` will tell */
    DISPATCH_BUSY,     /* (dispatch_try_submit only) the queue is full: nothing was done */
};

/* How an input learns what became of a message it submitted. Every member is optional. */
struct delivery {
    void (*done)(void *arg, enum dispatch_status status, const char *subject); /* exactly once */
    void (*progress)(void *arg); /* a retry is about to wait: the alert is still being worked on */
    void *arg;
    unsigned long delivered; /* how many times this message was delivered (JetStream), else 0 */
};

struct dispatcher;
struct kube;
struct workers;
struct cooldown;
struct limits;

struct rule;

/* Called after each action, e.g. by --replay to print a result line; via is the rule that brought it. */
typedef void (*dispatch_report_fn)(void *arg, const char *subject, const struct playbook *pb, const struct rule *via,
                                   enum outcome o, const char *reason);

/*
 * Takes cfg and kube (NULL when no playbook needs it): they live as long as the dispatcher, which lives
 * until it is released and its last alert is done. Retries follow cfg->retry; cooldowns use `cooldown`
 * and rate limits (cfg->rate_limit, each playbook's rate_limit) the limiters of `limits`, both shared by
 * successive configs, so a reload does not forget them (NULL: none).
 */
int dispatcher_create(struct dispatcher **out, struct config *cfg, struct kube *kube, struct cooldown *cooldown,
                      struct limits *limits, dispatch_report_fn report, void *report_arg);
/* Takes one more reference, for an input that hands alerts to d from another thread. */
void dispatcher_ref(struct dispatcher *d);
/* Drops a reference; the last one frees the dispatcher, its config and its Kubernetes client. NULL: no-op. */
void dispatcher_release(struct dispatcher *d);
const struct config *dispatcher_config(const struct dispatcher *d);

/* From now on, a failed action is not tried again: the process is stopping (an attempt under way ends). */
void dispatcher_stop(struct dispatcher *d);

/*
 * Handles one raw message: parses and matches it here, then queues it to pool (waiting while the queue
 * is full) or, with pool NULL, runs it in this thread. subject NULL: derived from the alert (replay).
 * origin names where it came from in log lines ("nats", "line 12"). The message data may be freed once
 * this returns. Returns DISPATCH_QUEUED, or the final status when it is known already (then `done` has
 * been called too).
 */
enum dispatch_status dispatch_submit(struct dispatcher *d, struct workers *pool, const char *subject, const char *data,
                                     size_t len, const char *origin, const struct delivery *dl);

/*
 * --check --explain: for one alert (JSON text), prints to out each topic and rule in order, matched or why
 * not (the first criterion that failed, alert values escaped), then the playbooks that would run in order
 * with the rule that brought each. Nothing runs and nothing is counted. -1 with err when the alert is
 * invalid.
 */
int dispatch_explain(const struct config *cfg, const char *data, size_t len, FILE *out, struct error *err);

/*
 * The same for an input that must answer at once (HTTP): the subject is derived from the alert, and
 * when the queue is full nothing is done and DISPATCH_BUSY comes back. A rejected alert's reason is in
 * why. No delivery: the input learns nothing more once the alert is queued.
 */
enum dispatch_status dispatch_try_submit(struct dispatcher *d, struct workers *pool, const char *data, size_t len,
                                         const char *origin, struct error *why);

/*
 * For an input that forwards alerts rather than running them (HTTP into JetStream): parses the alert and
 * derives its subject (not counted as received: the input that runs it counts it). An invalid alert is
 * logged and counted as rejected as dispatch_submit does, its reason in why, and -1 comes back.
 */
int dispatch_validate(const char *data, size_t len, const char *origin, char subject[SUBJECT_MAX], struct error *why);

#endif
