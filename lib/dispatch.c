/*
 * dispatch.c: from one message to its actions. Receiving parses the alert once and collects, in config
 * order and each at most once (the first rule to reach it brings it), the playbooks of every topic and
 * rule that matches, until a matching rule says `continue: false`; the result is one job
 * that a worker runs. An alert whose playbooks act on the cluster is keyed by its target (pod, else
 * node) so that alerts about one target run in order on one worker; one that only notifies may run on
 * any worker. A transient failure is retried with capped exponential backoff (honouring Retry-After)
 * before it counts as failed. Every action ends in one log line; the job's end is told to its input. A job
 * whose every action will be skipped without a request (target check, cooldown) runs where it was
 * received instead of waiting for a worker.
 *
 * Rate limits are applied on the worker, right before the action runs, after its cooldown and target
 * checks, so that an action skipped anyway takes no slot: first the playbook's own limit, then, for a
 * playbook that calls the Kubernetes API, the global one. An action that ends without effect (failed or
 * skipped) gives its slots back; ok and dry-run keep them (a dry run would have acted).
 */
#include "playbookd/dispatch.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "playbookd/cooldown.h"
#include "playbookd/kube.h"
#include "playbookd/limits.h"
#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/rules.h"
#include "playbookd/subject.h"
#include "playbookd/target.h"
#include "playbookd/text.h"
#include "playbookd/workers.h"

struct dispatcher {
    struct config *cfg;
    struct kube *kube;
    struct cooldown *cooldown;
    struct limiter **limiters; /* per playbook (cfg->playbooks' order), NULL where it has no rate_limit */
    struct limiter *global;    /* cfg->rate_limit for every mutating playbook, or NULL */
    int *rule_slots;           /* each rule's matches counter (metrics_rule_slot), cfg->rules' order */
    dispatch_report_fn report;
    void *report_arg;
    atomic_bool stopping;
    atomic_long refs;
};

/* One received alert on its way through a worker; allocated with its subject and playbook list. */
struct job {
    struct work work;
    struct dispatcher *d;
    struct alert alert;
    struct delivery delivery;
    const char *subject; /* points after via[] */
    const uint16_t *via; /* for each action, the index in cfg->rules of the rule that brought it */
    size_t n;
    uint16_t order[]; /* indices into cfg->playbooks, in the order to run; then via[] */
};

/* What matching one alert found: the playbooks in order, each with its rule. */
struct matched {
    uint16_t order[CONFIG_MAX_PLAYBOOKS];
    uint16_t via[CONFIG_MAX_PLAYBOOKS];
    size_t n;
    bool keyed; /* some playbook acts on the cluster */
    bool text;  /* some playbook reads the alert as received: the job keeps a copy */
};

_Static_assert(CONFIG_MAX_RULES <= UINT16_MAX, "a rule index fits in via[]");

static struct log_throttle cooldown_log = LOG_THROTTLE_INIT;

_Static_assert(RATE_LIMIT_MAX_COUNT <= LIMIT_MAX_COUNT, "every count the config accepts fits a limiter");

/* The limiter of a rate_limit, or NULL when there is none; false when out of memory. */
static bool bind_limit(struct limits *limits, const char *name, const struct rate_limit *rl, struct limiter **out)
{
    *out = rl->count > 0 && limits != NULL ? limits_get(limits, name, rl->count, rl->window_ms) : NULL;
    return *out != NULL || rl->count == 0 || limits == NULL;
}

static void unbind_limits(struct dispatcher *d)
{
    for (size_t i = 0; d->limiters != NULL && i < d->cfg->n_playbooks; i++)
        limiter_put(d->limiters[i]);
    free(d->limiters);
    limiter_put(d->global);
}

static int bind_limits(struct dispatcher *d, struct limits *limits)
{
    const struct config *cfg = d->cfg;
    d->limiters = calloc(cfg->n_playbooks + 1, sizeof(*d->limiters));
    if (d->limiters == NULL || !bind_limit(limits, LIMIT_GLOBAL, &cfg->rate_limit, &d->global))
        return -1;
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        if (!bind_limit(limits, cfg->playbooks[i]->name, &cfg->playbooks[i]->rate_limit, &d->limiters[i]))
            return -1;
    return 0;
}

static void dispatcher_free(struct dispatcher *d)
{
    unbind_limits(d);
    free(d->rule_slots);
    kube_destroy(d->kube);
    config_destroy(d->cfg);
    free(d);
}

int dispatcher_create(struct dispatcher **out, struct config *cfg, struct kube *kube, struct cooldown *cooldown,
                      struct limits *limits, dispatch_report_fn report, void *report_arg)
{
    struct dispatcher *d = calloc(1, sizeof(*d));
    *out = NULL;
    if (d == NULL) {
        kube_destroy(kube);
        config_destroy(cfg);
        return -1;
    }
    d->cfg = cfg;
    d->kube = kube;
    d->rule_slots = calloc(cfg->n_rules + 1, sizeof(*d->rule_slots));
    for (size_t i = 0; d->rule_slots != NULL && i < cfg->n_rules; i++)
        d->rule_slots[i] = metrics_rule_slot(cfg->rules[i].name);
    if (d->rule_slots == NULL || bind_limits(d, limits) != 0) {
        dispatcher_free(d);
        return -1;
    }
    d->cooldown = cooldown;
    d->report = report;
    d->report_arg = report_arg;
    atomic_init(&d->refs, 1);
    *out = d;
    return 0;
}

void dispatcher_ref(struct dispatcher *d)
{
    atomic_fetch_add(&d->refs, 1);
}

void dispatcher_release(struct dispatcher *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    dispatcher_free(d);
}

const struct config *dispatcher_config(const struct dispatcher *d)
{
    return d->cfg;
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
static enum outcome run_with_retries(const struct job *job, struct playbook *pb, struct action_result *res,
                                     int *attempts)
{
    const struct dispatcher *d = job->d;
    const struct config_retry *retry = &d->cfg->retry;
    struct action_result input = *res;
    long backoff = retry->initial_backoff_ms;
    for (*attempts = 1;; (*attempts)++) {
        *res = input;
        enum outcome o = pb->type->run(pb, &job->alert, res);
        if (o != OUTCOME_FAILED || !res->transient || *attempts >= retry->attempts || atomic_load(&d->stopping))
            return o;
        if (job->delivery.progress != NULL)
            job->delivery.progress(job->delivery.arg);
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

static void log_action(const struct job *job, size_t i, const struct action_record *r, int attempts, double ms,
                       enum log_level level)
{
    const struct rule *via = &job->d->cfg->rules[job->via[i]];
    char text[ACTION_REASON_MAX + 16], tries[16], took[32];
    snprintf(tries, sizeof(tries), "%d", attempts);
    snprintf(took, sizeof(took), "%.1f", ms);
    log_kv(r->outcome == OUTCOME_FAILED ? LOG_WARN : level, "action", "subject", job->subject, "rule", job->alert.rule,
           "priority", priority_name(job->alert.priority), "matched", via->name, "playbook", r->playbook->name, "type",
           r->playbook->type->name, "target", r->target[0] ? r->target : NULL, "outcome",
           outcome_text(r->outcome, r->reason, text, sizeof(text)), "attempts", tries, "ms", took, NULL);
}

/* The pod "ns/name" the alert names, else its hostname, into buf; "" when it names neither. */
static size_t target_text(const struct alert *a, char *buf, size_t size)
{
    char b1[256], b2[256];
    const char *ns = alert_field(a, "k8s.ns.name", b1, sizeof(b1));
    const char *pod = alert_field(a, "k8s.pod.name", b2, sizeof(b2));
    int n = ns && pod && *pod ? snprintf(buf, size, "%s/%s", ns, pod) : snprintf(buf, size, "%s", a->hostname);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* The cooldown key of pb for this alert: playbook, rule (notifications only) and target. */
static size_t cooldown_key(const struct playbook *pb, const struct alert *a, char *buf, size_t size)
{
    char target[600];
    target_text(a, target, sizeof(target));
    int n = snprintf(buf, size, "%s%c%s%c%s", pb->name, 0, pb->type->cooldown_per_rule ? a->rule : "", 0, target);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* True when pb's cooldown holds this alert's key (the action is skipped); else the key is claimed in key. */
static bool cooled_down(struct dispatcher *d, const struct playbook *pb, const struct alert *a, int64_t now, char *key,
                        size_t *key_len, struct action_result *res)
{
    *key_len = 0;
    if (pb->cooldown_ms <= 0 || d->cooldown == NULL)
        return false;
    size_t len = cooldown_key(pb, a, key, ALERT_MAX_RULE + 1024);
    if (!cooldown_claim(d->cooldown, key, len, pb->cooldown_ms, now, &res->suppressed)) {
        action_skip(res, "cooldown");
        metrics_cooldown_skipped();
        log_throttled(&cooldown_log, LOG_INFO, "actions skipped by cooldown", 1);
        return true;
    }
    *key_len = len;
    return false;
}

/* The slots an action took from its rate limiters, to give back when it has no effect. */
struct slots {
    struct limiter *own, *global; /* NULL: none taken */
    int64_t own_slot, global_slot;
};

static void slots_release(struct slots *s)
{
    if (s->own != NULL)
        limiter_release(s->own, s->own_slot);
    if (s->global != NULL)
        limiter_release(s->global, s->global_slot);
}

/* Skips the action for a rate limit: counted, the target named as the target check found it. */
static bool rate_skip(const struct playbook *pb, const struct rate_limit *rl, bool global, const char *target,
                      struct action_result *res)
{
    char limit[64];
    limits_format(rl->count, rl->window_ms, limit, sizeof(limit));
    action_skip(res, "rate limit: %s%s", limit, global ? " for all mutating playbooks" : "");
    memcpy(res->target, target, sizeof(res->target));
    metrics_rate_limited(pb, global);
    return true;
}

/*
 * True when a rate limit skips action i of the job; else the slots it took are in s. An action whose
 * target check skips it anyway (run would say why, without a request) takes no slot.
 */
static bool rate_limited(const struct job *job, size_t i, int64_t now, struct slots *s, struct action_result *res)
{
    const struct dispatcher *d = job->d;
    const struct playbook *pb = d->cfg->playbooks[job->order[i]];
    struct limiter *own = d->limiters[job->order[i]], *global = pb->type->needs_kube ? d->global : NULL;
    struct action_result probe = *res;
    struct target t;
    memset(s, 0, sizeof(*s));
    if ((own == NULL && global == NULL) ||
        (pb->type->find_target != NULL && pb->type->find_target(&job->alert, pb->env, &t, &probe) != OUTCOME_OK))
        return false;
    if (own != NULL && !limiter_take(own, now, &s->own_slot))
        return rate_skip(pb, &pb->rate_limit, false, probe.target, res);
    s->own = own;
    if (global != NULL && !limiter_take(global, now, &s->global_slot)) {
        slots_release(s);
        return rate_skip(pb, &d->cfg->rate_limit, true, probe.target, res);
    }
    s->global = global;
    return false;
}

/*
 * True when every action of the job will end without a request: its target check skips it (a host event,
 * a protected namespace, a bad name), or its cooldown holds for at least another second. Such a job runs
 * where it was received: a flood of alerts that lead nowhere never wakes a worker. (Its skip may be logged
 * before an earlier alert's action about the same target ends; actions themselves keep their order.)
 */
static bool decided_on_receipt(struct dispatcher *d, const struct job *job)
{
    char key[ALERT_MAX_RULE + 1024];
    int64_t soon = (int64_t)now_ms() + 1000;
    for (size_t i = 0; i < job->n; i++) {
        const struct playbook *pb = d->cfg->playbooks[job->order[i]];
        struct target t;
        struct action_result res = {0};
        if (pb->type->find_target != NULL && pb->type->find_target(&job->alert, pb->env, &t, &res) != OUTCOME_OK)
            continue;
        if (pb->cooldown_ms > 0 && d->cooldown != NULL &&
            cooldown_held(d->cooldown, key, cooldown_key(pb, &job->alert, key, sizeof(key)), soon))
            continue;
        return false;
    }
    return true;
}

/* Runs one action of the job (cooldown, rate limits, retries, log, metrics, report) into done[i]. */
static void run_action(struct job *job, size_t i, struct action_record *done)
{
    struct dispatcher *d = job->d;
    struct playbook *pb = d->cfg->playbooks[job->order[i]];
    struct action_record *r = &done[i];
    struct action_result res = {.before = done, .n_before = i};
    char key[ALERT_MAX_RULE + 1024];
    size_t key_len;
    int attempts = 0;
    double start = now_ms();
    r->playbook = pb;
    struct slots slots;
    if (cooled_down(d, pb, &job->alert, (int64_t)start, key, &key_len, &res)) {
        r->outcome = OUTCOME_SKIPPED;
    } else {
        bool limited = rate_limited(job, i, (int64_t)start, &slots, &res);
        r->outcome = limited ? OUTCOME_SKIPPED : run_with_retries(job, pb, &res, &attempts);
        if (r->outcome != OUTCOME_OK && r->outcome != OUTCOME_DRY_RUN) { /* no effect: the next alert may act */
            if (key_len > 0)
                cooldown_release(d->cooldown, key, key_len);
            if (!limited)
                slots_release(&slots);
        }
    }
    memcpy(r->reason, res.reason, sizeof(r->reason));
    memcpy(r->target, res.target, sizeof(r->target));
    r->transient = res.transient;
    double took = now_ms() - start;
    log_action(job, i, r, attempts, took, attempts == 0 ? LOG_DEBUG : LOG_INFO); /* cooldown, rate limit: counted */
    metrics_action(pb, r->outcome, took / 1000.0);
    if (d->report != NULL)
        d->report(d->report_arg, job->subject, pb, &d->cfg->rules[job->via[i]], r->outcome, r->reason);
}

static void job_end(struct job *job, enum dispatch_status status)
{
    if (job->delivery.done != NULL)
        job->delivery.done(job->delivery.arg, status, job->subject);
    alert_free(&job->alert);
    dispatcher_release(job->d);
    free(job);
}

/* Runs every action of the job and ends it. */
static enum dispatch_status job_run(struct job *job)
{
    struct action_record stack[8], *done = job->n <= 8 ? stack : calloc(job->n, sizeof(*done));
    enum dispatch_status status = DISPATCH_DONE;
    if (done == NULL) {
        log_kv(LOG_ERROR, "out of memory", "subject", job->subject, NULL);
        job_end(job, DISPATCH_RETRY);
        return DISPATCH_RETRY;
    }
    memset(done, 0, job->n * sizeof(*done));
    for (size_t i = 0; i < job->n; i++) {
        run_action(job, i, done);
        if (done[i].outcome == OUTCOME_FAILED && status != DISPATCH_FAILED)
            status = done[i].transient ? DISPATCH_RETRY : DISPATCH_FAILED;
    }
    if (done != stack)
        free(done);
    job_end(job, status);
    return status;
}

static void job_work_run(struct work *w)
{
    job_run((struct job *)w);
}

static void job_work_drop(struct work *w)
{
    job_end((struct job *)w, DISPATCH_DROPPED);
}

static enum dispatch_status finish_early(const struct delivery *dl, enum dispatch_status status, const char *subject)
{
    if (dl != NULL && dl->done != NULL)
        dl->done(dl->arg, status, subject);
    return status;
}

static enum dispatch_status reject(const struct delivery *dl, const char *subject, const char *origin,
                                   const char *reason, struct error *why)
{
    char total[32];
    snprintf(total, sizeof(total), "%lu", metrics_alert_rejected());
    log_kv(LOG_WARN, "rejected", "subject", subject ? subject : "-", "origin", origin, "reason", reason,
           "rejected_total", total, NULL);
    if (why != NULL)
        error_set(why, "%s", reason);
    return finish_early(dl, DISPATCH_REJECTED, subject);
}

/* Parses the alert into a and derives its subject into derived when subject is NULL; else rejects it. */
static enum dispatch_status parse(struct alert *a, const char *data, size_t len, const char **subject,
                                  char derived[SUBJECT_MAX], const char *origin, const struct delivery *dl,
                                  struct error *why)
{
    struct error err;
    if (alert_parse(a, data, len, &err) != 0)
        return reject(dl, *subject, origin, err.msg, why);
    if (*subject == NULL && subject_for_alert(a, derived, SUBJECT_MAX) < 0) {
        alert_free(a);
        return reject(dl, NULL, origin, "the rule has no letters or digits to make a subject", why);
    }
    *subject = *subject ? *subject : derived;
    return DISPATCH_QUEUED;
}

/* Adds the playbooks of rule ri that are not there yet, in its order. */
static void take(const struct config *cfg, size_t ri, struct matched *m, uint64_t seen[CONFIG_MAX_PLAYBOOKS / 64])
{
    const struct rule *r = &cfg->rules[ri];
    for (size_t i = 0; i < r->n_playbooks; i++) {
        size_t p = r->playbooks[i];
        if (seen[p / 64] & (UINT64_C(1) << (p % 64)))
            continue;
        seen[p / 64] |= UINT64_C(1) << (p % 64);
        m->via[m->n] = (uint16_t)ri;
        m->order[m->n++] = (uint16_t)p;
        m->keyed = m->keyed || cfg->playbooks[p]->type->needs_kube;
        m->text = m->text || cfg->playbooks[p]->type->wants_alert_text;
    }
}

/* `topic "falco.*.*"` or `rule "shells in prod"`, escaped, into buf. */
static const char *rule_label(const struct rule *r, char *buf, size_t size)
{
    char name[RULE_NAME_MAX * 2];
    snprintf(buf, size, "%s \"%s\"", r->is_topic ? "topic" : "rule", text_escape(name, sizeof(name), r->name));
    return buf;
}

/* For --check --explain: one rule's verdict, and the rules a `continue: false` left out. */
static void explain_rule(FILE *out, const struct config *cfg, size_t ri, const char *why, size_t stop_at)
{
    const struct rule *r = &cfg->rules[ri];
    char label[RULE_NAME_MAX * 2 + 16];
    if (why != NULL) {
        fprintf(out, "%s: no: %s\n", rule_label(r, label, sizeof(label)), why);
        return;
    }
    fprintf(out, "%s: matched:", rule_label(r, label, sizeof(label)));
    for (size_t i = 0; i < r->n_playbooks; i++)
        fprintf(out, " %s", cfg->playbooks[r->playbooks[i]]->name);
    fprintf(out, "%s\n", r->stop ? " (continue: false: the rules after it are not evaluated)" : "");
    for (size_t i = stop_at; r->stop && i < cfg->n_rules; i++)
        fprintf(out, "%s: not evaluated\n", rule_label(&cfg->rules[i], label, sizeof(label)));
}

/*
 * Matches the alert against every topic and rule in order, until one that matches says continue: false;
 * the playbooks of those that match, each once, into m. Matches are counted in slots (NULL: not counted);
 * explain (NULL on the hot path) receives each verdict.
 */
static void collect(const struct config *cfg, const int *slots, const struct alert *a, const char *subject,
                    struct matched *m, FILE *explain)
{
    uint64_t seen[CONFIG_MAX_PLAYBOOKS / 64] = {0};
    char why[RULE_WHY_MAX];
    m->n = 0;
    m->keyed = false;
    m->text = false;
    for (size_t i = 0; i < cfg->n_rules; i++) {
        const struct rule *r = &cfg->rules[i];
        if (!rule_match(r, a, subject, explain ? why : NULL, sizeof(why))) {
            if (explain != NULL)
                explain_rule(explain, cfg, i, why, 0);
            continue;
        }
        if (slots != NULL)
            metrics_rule_matched(slots[i]);
        take(cfg, i, m, seen);
        if (explain != NULL)
            explain_rule(explain, cfg, i, NULL, i + 1);
        if (r->stop)
            break;
    }
}

/* A job for the parsed alert a (taken) and its playbooks, with a copy of the message data when a playbook
 * reads it; NULL when out of memory. */
static struct job *job_create(struct dispatcher *d, const char *subject, struct alert *a, const struct matched *m,
                              const char *data, size_t len, const struct delivery *dl)
{
    size_t subject_len = strlen(subject), n = m->n, text_len = m->text ? len : 0;
    struct job *job = malloc(sizeof(*job) + 2 * n * sizeof(job->order[0]) + subject_len + 1 + text_len + 1);
    if (job == NULL)
        return NULL;
    memset(job, 0, sizeof(*job));
    job->d = d;
    job->alert = *a;
    if (a->time == a->time_buf) /* the rendered time lives in the struct: point at the job's copy */
        job->alert.time = job->alert.time_buf;
    job->delivery = dl ? *dl : (struct delivery){0};
    job->n = n;
    memcpy(job->order, m->order, n * sizeof(job->order[0]));
    memcpy(job->order + n, m->via, n * sizeof(job->order[0]));
    job->via = job->order + n;
    char *s = (char *)(job->order + 2 * n);
    memcpy(s, subject, subject_len + 1);
    job->subject = s;
    if (m->text) {
        char *text = s + subject_len + 1;
        memcpy(text, data, len);
        text[len] = 0;
        job->alert.text = text;
        job->alert.text_len = len;
    }
    job->work.run = job_work_run;
    job->work.drop = job_work_drop;
    dispatcher_ref(d);
    return job;
}

/* A job with a key (its target) goes to the pool, waiting for room or not; else the job ends dropped. */
static enum dispatch_status queue(struct workers *pool, struct job *job, bool keyed, bool wait)
{
    char target[600];
    job->work.key = keyed ? workers_key(target, target_text(&job->alert, target, sizeof(target))) : 0;
    int rc = wait ? workers_submit(pool, &job->work) : workers_try_submit(pool, &job->work);
    if (rc > 0) { /* full: nothing happened, the input answers for it */
        alert_free(&job->alert);
        dispatcher_release(job->d);
        free(job);
        return DISPATCH_BUSY;
    }
    if (rc != 0) {
        job_end(job, DISPATCH_DROPPED); /* the pool is stopping */
        return DISPATCH_DROPPED;
    }
    return DISPATCH_QUEUED;
}

static enum dispatch_status submit(struct dispatcher *d, struct workers *pool, const char *subject, const char *data,
                                   size_t len, const char *origin, const struct delivery *dl, bool wait,
                                   struct error *why)
{
    struct alert a;
    char derived[SUBJECT_MAX];
    struct matched m;
    metrics_alert_received();
    enum dispatch_status status = parse(&a, data, len, &subject, derived, origin, dl, why);
    if (status != DISPATCH_QUEUED)
        return status;
    collect(d->cfg, d->rule_slots, &a, subject, &m, NULL);
    if (m.n == 0) {
        alert_free(&a);
        return finish_early(dl, DISPATCH_DONE, subject);
    }
    struct job *job = job_create(d, subject, &a, &m, data, len, dl);
    if (job == NULL) {
        alert_free(&a);
        log_kv(LOG_ERROR, "out of memory", "subject", subject, NULL);
        return finish_early(dl, DISPATCH_RETRY, subject);
    }
    if (pool == NULL || decided_on_receipt(d, job))
        return job_run(job);
    return queue(pool, job, m.keyed, wait);
}

enum dispatch_status dispatch_submit(struct dispatcher *d, struct workers *pool, const char *subject, const char *data,
                                     size_t len, const char *origin, const struct delivery *dl)
{
    return submit(d, pool, subject, data, len, origin, dl, true, NULL);
}

enum dispatch_status dispatch_try_submit(struct dispatcher *d, struct workers *pool, const char *data, size_t len,
                                         const char *origin, struct error *why)
{
    return submit(d, pool, NULL, data, len, origin, NULL, false, why);
}

int dispatch_validate(const char *data, size_t len, const char *origin, char subject[SUBJECT_MAX], struct error *why)
{
    struct alert a;
    const char *derived = NULL;
    if (parse(&a, data, len, &derived, subject, origin, NULL, why) != DISPATCH_QUEUED)
        return -1;
    alert_free(&a);
    return 0;
}

int dispatch_explain(const struct config *cfg, const char *data, size_t len, FILE *out, struct error *err)
{
    struct alert a;
    struct matched m;
    char subject[SUBJECT_MAX], rule[256], label[RULE_NAME_MAX * 2 + 16];
    if (alert_parse(&a, data, len, err) != 0)
        return -1;
    if (subject_for_alert(&a, subject, sizeof(subject)) < 0) {
        alert_free(&a);
        return error_set(err, "the rule has no letters or digits to make a subject");
    }
    fprintf(out, "alert: rule \"%s\", priority %s, subject %s\n", text_escape(rule, sizeof(rule), a.rule),
            priority_name(a.priority), subject);
    collect(cfg, NULL, &a, subject, &m, out);
    fprintf(out, m.n ? "playbooks, in order:\n" : "playbooks: none\n");
    for (size_t i = 0; i < m.n; i++)
        fprintf(out, "  %s (%s) via %s\n", cfg->playbooks[m.order[i]]->name, cfg->playbooks[m.order[i]]->type->name,
                rule_label(&cfg->rules[m.via[i]], label, sizeof(label)));
    alert_free(&a);
    return 0;
}
