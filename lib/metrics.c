/*
 * metrics.c: counters (relaxed atomics: they are counts, not synchronisation) and, per playbook, actions
 * by outcome and a latency histogram under one lock. Playbooks are keyed by name, so their series go on
 * across a config reload. Names follow Prometheus conventions: playbookd_..._total, _seconds.
 */
#include "playbookd/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 512
#define N_BUCKETS 14

static const double bucket_bounds[N_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                0.25,  0.5,    1,     2.5,  5,     10,   30};

struct series {
    char playbook[64], type[32];
    unsigned long outcomes[OUTCOME_COUNT];
    unsigned long rate_limited[2];    /* by the playbook's own limit, by the global one */
    unsigned long buckets[N_BUCKETS]; /* cumulative at render time */
    unsigned long count;
    double sum;
};

static atomic_ulong alerts_received, alerts_rejected, nats_reconnects, reloads_ok, reloads_failed;
static atomic_ulong actions[OUTCOME_COUNT];
static atomic_ulong dropped_slow_consumer, dropped_shutdown, dropped_max_deliver;
static atomic_ulong events_ok, events_failed, events_dropped, cooldown_skipped, cooldown_evicted;
static atomic_long queue_depth, http_connections;
static atomic_ulong http_closed_per_ip, http_closed_total, http_closed_deadline;
static const char *const http_alert_results[] = {"accepted", "rejected", "unauthorized", "too_large", "busy"};
#define HTTP_ALERT_RESULTS (sizeof(http_alert_results) / sizeof(http_alert_results[0]))
static atomic_ulong http_alerts[HTTP_ALERT_RESULTS];
static atomic_bool nats_connected;
static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[MAX_SERIES];
static size_t n_series;

struct rule_series {
    char *name;
    atomic_ulong matches;
};
static struct rule_series rule_series[METRICS_MAX_RULES];
static atomic_size_t n_rule_series;
static atomic_ulong rule_overflow;

void metrics_alert_received(void)
{
    atomic_fetch_add_explicit(&alerts_received, 1, memory_order_relaxed);
}

unsigned long metrics_alert_rejected(void)
{
    return atomic_fetch_add_explicit(&alerts_rejected, 1, memory_order_relaxed) + 1;
}

/* The series of a playbook, added on first use; NULL when the table is full. Under series_lock. */
static struct series *series_for(const struct playbook *pb)
{
    for (size_t i = 0; i < n_series; i++)
        if (strcmp(series[i].playbook, pb->name) == 0 && strcmp(series[i].type, pb->type->name) == 0)
            return &series[i];
    if (n_series == MAX_SERIES)
        return NULL;
    struct series *s = &series[n_series++];
    snprintf(s->playbook, sizeof(s->playbook), "%s", pb->name);
    snprintf(s->type, sizeof(s->type), "%s", pb->type->name);
    return s;
}

void metrics_action(const struct playbook *pb, enum outcome o, double seconds)
{
    if ((unsigned)o >= OUTCOME_COUNT)
        return;
    atomic_fetch_add_explicit(&actions[o], 1, memory_order_relaxed);
    pthread_mutex_lock(&series_lock);
    struct series *s = series_for(pb);
    if (s != NULL) {
        s->outcomes[o]++;
        s->count++;
        s->sum += seconds;
        for (int b = 0; b < N_BUCKETS; b++)
            if (seconds <= bucket_bounds[b]) {
                s->buckets[b]++;
                break;
            }
    }
    pthread_mutex_unlock(&series_lock);
}

void metrics_rate_limited(const struct playbook *pb, bool global)
{
    pthread_mutex_lock(&series_lock);
    struct series *s = series_for(pb);
    if (s != NULL)
        s->rate_limited[global]++;
    pthread_mutex_unlock(&series_lock);
}

int metrics_rule_slot(const char *name)
{
    int slot = -1;
    size_t n = atomic_load(&n_rule_series);
    pthread_mutex_lock(&series_lock);
    for (size_t i = 0; i < n && slot < 0; i++)
        if (strcmp(rule_series[i].name, name) == 0)
            slot = (int)i;
    if (slot < 0 && n < METRICS_MAX_RULES && (rule_series[n].name = strdup(name)) != NULL) {
        slot = (int)n;
        atomic_store(&n_rule_series, n + 1); /* published once its name is set */
    }
    pthread_mutex_unlock(&series_lock);
    return slot;
}

void metrics_rule_matched(int slot)
{
    atomic_fetch_add_explicit(slot >= 0 ? &rule_series[slot].matches : &rule_overflow, 1, memory_order_relaxed);
}

unsigned long metrics_rule_matches(const char *name)
{
    size_t n = atomic_load(&n_rule_series);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rule_series[i].name, name) == 0)
            return atomic_load(&rule_series[i].matches);
    return 0;
}

static void add(atomic_ulong *counter, unsigned long n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

void metrics_alerts_dropped(const char *reason, unsigned long n)
{
    if (strcmp(reason, "slow_consumer") == 0)
        add(&dropped_slow_consumer, n);
    else if (strcmp(reason, "max_deliver") == 0)
        add(&dropped_max_deliver, n);
    else
        add(&dropped_shutdown, n);
}

void metrics_event(const char *result)
{
    add(strcmp(result, "ok") == 0 ? &events_ok : strcmp(result, "failed") == 0 ? &events_failed : &events_dropped, 1);
}

void metrics_cooldown_skipped(void)
{
    add(&cooldown_skipped, 1);
}

void metrics_cooldown_evicted(unsigned long n)
{
    add(&cooldown_evicted, n);
}

void metrics_queue_depth(long delta)
{
    atomic_fetch_add_explicit(&queue_depth, delta, memory_order_relaxed);
}

void metrics_nats_connected(bool connected)
{
    atomic_store(&nats_connected, connected);
}

void metrics_nats_reconnected(void)
{
    atomic_fetch_add_explicit(&nats_reconnects, 1, memory_order_relaxed);
}

void metrics_config_reload(bool ok)
{
    atomic_fetch_add_explicit(ok ? &reloads_ok : &reloads_failed, 1, memory_order_relaxed);
}

void metrics_http_connections(long delta)
{
    atomic_fetch_add_explicit(&http_connections, delta, memory_order_relaxed);
}

void metrics_http_closed(const char *reason)
{
    add(strcmp(reason, "per_ip_limit") == 0  ? &http_closed_per_ip
        : strcmp(reason, "total_limit") == 0 ? &http_closed_total
                                             : &http_closed_deadline,
        1);
}

void metrics_http_alerts(const char *result, unsigned long n)
{
    for (size_t i = 0; i < HTTP_ALERT_RESULTS; i++)
        if (strcmp(result, http_alert_results[i]) == 0)
            add(&http_alerts[i], n);
}

void metrics_snapshot(struct metrics_snapshot *out)
{
    out->alerts_received = atomic_load_explicit(&alerts_received, memory_order_relaxed);
    out->alerts_rejected = atomic_load_explicit(&alerts_rejected, memory_order_relaxed);
    for (int i = 0; i < OUTCOME_COUNT; i++)
        out->actions[i] = atomic_load_explicit(&actions[i], memory_order_relaxed);
    out->dropped_slow_consumer = atomic_load(&dropped_slow_consumer);
    out->dropped_shutdown = atomic_load(&dropped_shutdown);
    out->dropped_max_deliver = atomic_load(&dropped_max_deliver);
    out->events_ok = atomic_load(&events_ok);
    out->events_failed = atomic_load(&events_failed);
    out->events_dropped = atomic_load(&events_dropped);
    out->cooldown_skipped = atomic_load(&cooldown_skipped);
    out->cooldown_evicted = atomic_load(&cooldown_evicted);
}

struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void emit(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct text *t, const char *fmt, ...)
{
    for (int pass = 0; pass < 2 && !t->failed; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
        } else if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        } else {
            size_t cap = (t->cap + (size_t)n + 1) * 2;
            char *grown = realloc(t->buf, cap);
            t->failed = grown == NULL;
            t->buf = grown ? grown : t->buf;
            t->cap = grown ? cap : t->cap;
        }
    }
}

static void counter(struct text *t, const char *name, const char *help, unsigned long value)
{
    emit(t, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name, value);
}

/* A label value as Prometheus reads it: '\\' and '"' backslashed (rule names hold no control characters). */
static void emit_label(struct text *t, const char *v)
{
    for (; *v; v++)
        emit(t, "%s%c", *v == '\\' || *v == '"' ? "\\" : "", *v);
}

static void render_rules(struct text *t)
{
    size_t n = atomic_load(&n_rule_series);
    emit(t, "# HELP playbookd_rule_matches_total Alerts matched, by rule (a topic under its pattern).\n"
            "# TYPE playbookd_rule_matches_total counter\n");
    for (size_t i = 0; i < n; i++) {
        emit(t, "playbookd_rule_matches_total{rule=\"");
        emit_label(t, rule_series[i].name);
        emit(t, "\"} %lu\n", atomic_load(&rule_series[i].matches));
    }
    emit(t, "playbookd_rule_matches_total{rule=\"(other)\"} %lu\n", atomic_load(&rule_overflow));
}

static void render_series(struct text *t)
{
    emit(t, "# HELP playbookd_actions_total Actions run, by playbook and final outcome (after retries).\n"
            "# TYPE playbookd_actions_total counter\n");
    for (size_t i = 0; i < n_series; i++)
        for (int o = 0; o < OUTCOME_COUNT; o++)
            emit(t, "playbookd_actions_total{playbook=\"%s\",type=\"%s\",outcome=\"%s\"} %lu\n", series[i].playbook,
                 series[i].type, outcome_name((enum outcome)o), series[i].outcomes[o]);
    emit(t, "# HELP playbookd_actions_rate_limited_total Actions skipped by a rate limit: the playbook's own "
            "(limit=\"playbook\") or the one of all mutating playbooks (limit=\"global\").\n"
            "# TYPE playbookd_actions_rate_limited_total counter\n");
    for (size_t i = 0; i < n_series; i++)
        for (int g = 0; g < 2; g++)
            emit(t, "playbookd_actions_rate_limited_total{playbook=\"%s\",type=\"%s\",limit=\"%s\"} %lu\n",
                 series[i].playbook, series[i].type, g ? "global" : "playbook", series[i].rate_limited[g]);
    emit(t, "# HELP playbookd_action_duration_seconds How long an action took, retries included.\n"
            "# TYPE playbookd_action_duration_seconds histogram\n");
    for (size_t i = 0; i < n_series; i++) {
        unsigned long cumulative = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cumulative += series[i].buckets[b];
            emit(t, "playbookd_action_duration_seconds_bucket{playbook=\"%s\",type=\"%s\",le=\"%g\"} %lu\n",
                 series[i].playbook, series[i].type, bucket_bounds[b], cumulative);
        }
        emit(t, "playbookd_action_duration_seconds_bucket{playbook=\"%s\",type=\"%s\",le=\"+Inf\"} %lu\n",
             series[i].playbook, series[i].type, series[i].count);
        emit(t, "playbookd_action_duration_seconds_sum{playbook=\"%s\",type=\"%s\"} %.6f\n", series[i].playbook,
             series[i].type, series[i].sum);
        emit(t, "playbookd_action_duration_seconds_count{playbook=\"%s\",type=\"%s\"} %lu\n", series[i].playbook,
             series[i].type, series[i].count);
    }
}

char *metrics_render(size_t *len)
{
    struct text t = {.buf = malloc(4096), .cap = 4096};
    if (t.buf == NULL)
        return NULL;
    counter(&t, "playbookd_alerts_received_total", "Messages received, valid or not.", atomic_load(&alerts_received));
    counter(&t, "playbookd_alerts_rejected_total", "Messages rejected as bad input (not a Falco alert).",
            atomic_load(&alerts_rejected));
    counter(&t, "playbookd_nats_reconnects_total", "Reconnections to NATS.", atomic_load(&nats_reconnects));
    emit(&t,
         "# HELP playbookd_alerts_dropped_total Alerts received but never run, by reason.\n"
         "# TYPE playbookd_alerts_dropped_total counter\n"
         "playbookd_alerts_dropped_total{reason=\"slow_consumer\"} %lu\n"
         "playbookd_alerts_dropped_total{reason=\"shutdown\"} %lu\n"
         "playbookd_alerts_dropped_total{reason=\"max_deliver\"} %lu\n",
         atomic_load(&dropped_slow_consumer), atomic_load(&dropped_shutdown), atomic_load(&dropped_max_deliver));
    emit(&t,
         "# HELP playbookd_events_total Kubernetes Events, by result (dropped: their queue was full).\n"
         "# TYPE playbookd_events_total counter\n"
         "playbookd_events_total{result=\"ok\"} %lu\nplaybookd_events_total{result=\"failed\"} %lu\n"
         "playbookd_events_total{result=\"dropped\"} %lu\n",
         atomic_load(&events_ok), atomic_load(&events_failed), atomic_load(&events_dropped));
    counter(&t, "playbookd_cooldown_skipped_total",
            "Actions skipped because their playbook's cooldown held the target.", atomic_load(&cooldown_skipped));
    counter(&t, "playbookd_cooldown_evicted_total", "Cooldown keys forgotten because the table was full.",
            atomic_load(&cooldown_evicted));
    emit(&t,
         "# HELP playbookd_queue_depth Alerts waiting for a worker.\n# TYPE playbookd_queue_depth gauge\n"
         "playbookd_queue_depth %ld\n",
         atomic_load(&queue_depth));
    emit(&t,
         "# HELP playbookd_nats_connected 1 while connected to NATS.\n# TYPE playbookd_nats_connected gauge\n"
         "playbookd_nats_connected %d\n",
         atomic_load(&nats_connected) ? 1 : 0);
    emit(&t,
         "# HELP playbookd_config_reloads_total Config reloads (SIGHUP) by result.\n"
         "# TYPE playbookd_config_reloads_total counter\n"
         "playbookd_config_reloads_total{result=\"ok\"} %lu\nplaybookd_config_reloads_total{result=\"failed\"} %lu\n",
         atomic_load(&reloads_ok), atomic_load(&reloads_failed));
    emit(&t,
         "# HELP playbookd_http_connections Connections open to the HTTP endpoint.\n"
         "# TYPE playbookd_http_connections gauge\nplaybookd_http_connections %ld\n"
         "# HELP playbookd_http_connections_closed_total Connections the HTTP endpoint closed to stay available.\n"
         "# TYPE playbookd_http_connections_closed_total counter\n"
         "playbookd_http_connections_closed_total{reason=\"per_ip_limit\"} %lu\n"
         "playbookd_http_connections_closed_total{reason=\"total_limit\"} %lu\n"
         "playbookd_http_connections_closed_total{reason=\"deadline\"} %lu\n",
         atomic_load(&http_connections), atomic_load(&http_closed_per_ip), atomic_load(&http_closed_total),
         atomic_load(&http_closed_deadline));
    emit(&t, "# HELP playbookd_http_alerts_total The alert input over HTTP: alerts accepted, requests refused by "
             "reason.\n# TYPE playbookd_http_alerts_total counter\n");
    for (size_t i = 0; i < HTTP_ALERT_RESULTS; i++)
        emit(&t, "playbookd_http_alerts_total{result=\"%s\"} %lu\n", http_alert_results[i],
             atomic_load(&http_alerts[i]));
    emit(&t,
         "# HELP playbookd_build_info The running version.\n# TYPE playbookd_build_info gauge\n"
         "playbookd_build_info{version=\"%s\"} 1\n",
         PLAYBOOKD_VERSION);
    pthread_mutex_lock(&series_lock);
    render_rules(&t);
    render_series(&t);
    pthread_mutex_unlock(&series_lock);
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
