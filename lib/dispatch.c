/*
 * dispatch.c: from one message to its actions. The alert is parsed once; the playbooks of every topic
 * whose pattern matches are collected in config order, each at most once, and run one after another.
 * A transient failure is retried with capped exponential backoff (honouring Retry-After) before it
 * counts as failed. Every action ends in one log line.
 */
#include "playbookd/dispatch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/subject.h"

struct dispatcher {
    const struct config *cfg;
    dispatch_report_fn report;
    void *report_arg;
    atomic_bool stopping;
};

int dispatcher_create(struct dispatcher **out, const struct config *cfg, dispatch_report_fn report, void *report_arg)
{
    struct dispatcher *d = calloc(1, sizeof(*d));
    *out = d;
    if (d == NULL)
        return -1;
    d->cfg = cfg;
    d->report = report;
    d->report_arg = report_arg;
    return 0;
}

void dispatcher_destroy(struct dispatcher *d)
{
    free(d);
}

void dispatcher_stop(struct dispatcher *d)
{
    atomic_store(&d->stopping, true);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Sleeps ms milliseconds, in slices, returning early once the dispatcher is stopping. */
static void backoff_sleep(const struct dispatcher *d, long ms)
{
    for (long slept = 0; slept < ms && !atomic_load(&d->stopping); slept += 50) {
        long slice = ms - slept < 50 ? ms - slept : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = slice * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
    }
}

/* Runs one action, retrying transient failures; returns the final outcome and the tries made. */
static enum outcome run_with_retries(const struct dispatcher *d, struct playbook *pb, const struct alert *a,
                                     const struct action_record *before, size_t n_before, struct action_result *res,
                                     int *attempts)
{
    const struct config_retry *retry = &d->cfg->retry;
    long backoff = retry->initial_backoff_ms;
    for (*attempts = 1;; (*attempts)++) {
        memset(res, 0, sizeof(*res));
        res->before = before;
        res->n_before = n_before;
        enum outcome o = pb->type->run(pb, a, res);
        if (o != OUTCOME_FAILED || !res->transient || *attempts >= retry->attempts || atomic_load(&d->stopping))
            return o;
        long wait = res->retry_after_ms > backoff ? res->retry_after_ms : backoff;
        backoff_sleep(d, wait < retry->max_backoff_ms ? wait : retry->max_backoff_ms);
        if (atomic_load(&d->stopping))
            return o; /* the last failure stands: no new attempt while stopping */
        backoff = backoff * 2 < retry->max_backoff_ms ? backoff * 2 : retry->max_backoff_ms;
    }
}

/* "ok", or "failed (HTTP 500)": the outcome as logs and replay print it. */
static const char *outcome_text(enum outcome o, const char *reason, char *buf, size_t size)
{
    if (o != OUTCOME_SKIPPED && o != OUTCOME_FAILED)
        return outcome_name(o);
    snprintf(buf, size, "%s (%s)", outcome_name(o), reason[0] ? reason : "no reason given");
    return buf;
}

static void log_action(const char *subject, const struct alert *a, const struct action_record *r, int attempts,
                       double ms)
{
    char text[ACTION_REASON_MAX + 16], tries[16], took[32];
    snprintf(tries, sizeof(tries), "%d", attempts);
    snprintf(took, sizeof(took), "%.1f", ms);
    log_kv(r->outcome == OUTCOME_FAILED ? LOG_WARN : LOG_INFO, "action", "subject", subject, "rule", a->rule,
           "priority", priority_name(a->priority), "playbook", r->playbook->name, "type", r->playbook->type->name,
           "target", r->target[0] ? r->target : NULL, "outcome",
           outcome_text(r->outcome, r->reason, text, sizeof(text)), "attempts", tries, "ms", took, NULL);
}

/* The playbooks to run for subject, each once, in config order; returns how many. */
static size_t collect(const struct config *cfg, const char *subject, size_t order[CONFIG_MAX_PLAYBOOKS])
{
    uint64_t seen[CONFIG_MAX_PLAYBOOKS / 64] = {0};
    size_t n = 0;
    for (size_t t = 0; t < cfg->n_topics; t++) {
        const struct topic *topic = &cfg->topics[t];
        if (!subject_matches(topic->pattern, subject))
            continue;
        for (size_t i = 0; i < topic->n_playbooks; i++) {
            size_t p = topic->playbooks[i];
            if (seen[p / 64] & (UINT64_C(1) << (p % 64)))
                continue;
            seen[p / 64] |= UINT64_C(1) << (p % 64);
            order[n++] = p;
        }
    }
    return n;
}

/* Runs the playbooks of every topic matching subject, for an alert already parsed. */
static enum dispatch_status dispatch_alert(struct dispatcher *d, const char *subject, const struct alert *a)
{
    size_t order[CONFIG_MAX_PLAYBOOKS];
    size_t n = collect(d->cfg, subject, order);
    struct action_record *done = n ? calloc(n, sizeof(*done)) : NULL;
    enum dispatch_status status = DISPATCH_DONE;
    if (n > 0 && done == NULL) {
        log_kv(LOG_ERROR, "out of memory", "subject", subject, NULL);
        return DISPATCH_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        struct action_record *r = &done[i];
        struct action_result res;
        int attempts;
        double start = now_ms();
        r->playbook = d->cfg->playbooks[order[i]];
        r->outcome = run_with_retries(d, d->cfg->playbooks[order[i]], a, done, i, &res, &attempts);
        memcpy(r->reason, res.reason, sizeof(r->reason));
        memcpy(r->target, res.target, sizeof(r->target));
        double took = now_ms() - start;
        log_action(subject, a, r, attempts, took);
        metrics_action(r->playbook, r->outcome, took / 1000.0);
        if (d->report != NULL)
            d->report(d->report_arg, subject, r->playbook, r->outcome, r->reason);
        if (r->outcome == OUTCOME_FAILED)
            status = DISPATCH_FAILED;
    }
    free(done);
    return status;
}

static enum dispatch_status reject(const char *subject, const char *origin, const char *reason)
{
    char total[32];
    snprintf(total, sizeof(total), "%lu", metrics_alert_rejected());
    log_kv(LOG_WARN, "rejected", "subject", subject ? subject : "-", "origin", origin, "reason", reason,
           "rejected_total", total, NULL);
    return DISPATCH_REJECTED;
}

enum dispatch_status dispatch_message(struct dispatcher *d, const char *subject, const char *data, size_t len,
                                      const char *origin)
{
    struct alert a;
    struct error err;
    char derived[SUBJECT_MAX];
    metrics_alert_received();
    if (alert_parse(&a, data, len, &err) != 0)
        return reject(subject, origin, err.msg);
    if (subject == NULL && subject_for_alert(&a, derived, sizeof(derived)) < 0) {
        alert_free(&a);
        return reject(NULL, origin, "the rule has no letters or digits to make a subject");
    }
    enum dispatch_status status = dispatch_alert(d, subject ? subject : derived, &a);
    alert_free(&a);
    return status;
}
