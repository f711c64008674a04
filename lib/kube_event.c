/*
 * kube_event.c: events.k8s.io/v1 Events off the action's path. kube_record_event builds the Event at once
 * and queues it without waiting; KUBE_EVENT_SENDERS threads POST what is queued, each request on a pooled
 * keep-alive connection of http.c. Best effort and bounded: a full queue drops the Event. Every Event is
 * counted (ok, failed, dropped); failures and drops are logged at most once a second.
 */
#include "playbookd/kube.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "playbookd/log.h"
#include "playbookd/metrics.h"
#include "playbookd/text.h"

#define DROPPED_MSG "event dropped: the queue is full"

/* One Event waiting for a sender: its body, built when it was recorded, and what a failure names. */
struct queued_event {
    char *body;
    bool dry_run;
    char path[128]; /* the namespace is a DNS-1123 label: at most 63 */
    char object[254];
    char action[64];
};

struct kube_events {
    struct kube *k;
    long timeout_ms;      /* of one Event request */
    char instance[128];   /* this replica: reportingInstance */
    pthread_mutex_t lock; /* guards the ring, stopping and deadline_s */
    pthread_cond_t ready; /* an Event was queued, or stopping */
    struct queued_event *ring[KUBE_EVENT_QUEUE_MAX];
    size_t head, count;
    bool stopping;
    double deadline_s; /* when stopping: no Event starts after this */
    pthread_t senders[KUBE_EVENT_SENDERS];
    size_t n_senders;
    struct log_throttle dropped_log;
    pthread_mutex_t fail_lock;   /* guards the two below */
    double fail_logged_s;        /* when "event not recorded" was last logged */
    unsigned long fail_unlogged; /* failures since, not logged */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A MicroTime, as events.k8s.io/v1 requires: exactly six fractional digits. */
static void micro_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static char *event_body(const struct kube_events *q, const struct kube_event *ev, const char *ns)
{
    char when[40], full[1100], note[1024]; /* a note is at most 1 kB */
    micro_time(when, sizeof(when));
    snprintf(full, sizeof(full), "%s%s", ev->dry_run ? "[dry run] " : "", ev->note);
    text_copy(note, sizeof(note), full);
    cJSON *e = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(e, "metadata");
    cJSON *reg = cJSON_AddObjectToObject(e, "regarding");
    cJSON_AddStringToObject(e, "apiVersion", "events.k8s.io/v1");
    cJSON_AddStringToObject(e, "kind", "Event");
    cJSON_AddStringToObject(meta, "generateName", "playbookd-");
    cJSON_AddStringToObject(meta, "namespace", ns);
    cJSON_AddStringToObject(e, "eventTime", when);
    cJSON_AddStringToObject(e, "reportingController", "playbookd.io/playbookd");
    cJSON_AddStringToObject(e, "reportingInstance", q->instance);
    cJSON_AddStringToObject(e, "action", ev->action);
    cJSON_AddStringToObject(e, "reason", "FalcoAlert");
    cJSON_AddStringToObject(e, "type", "Warning");
    cJSON_AddStringToObject(e, "note", note);
    cJSON_AddStringToObject(reg, "apiVersion", "v1");
    cJSON_AddStringToObject(reg, "kind", ev->kind);
    cJSON_AddStringToObject(reg, "name", ev->name);
    if (ev->namespace_ != NULL)
        cJSON_AddStringToObject(reg, "namespace", ev->namespace_);
    if (ev->uid != NULL)
        cJSON_AddStringToObject(reg, "uid", ev->uid);
    char *json = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    return json;
}

static void event_free(struct queued_event *e)
{
    if (e != NULL)
        free(e->body);
    free(e);
}

/* The Event, built and copied out of ev; NULL when out of memory. */
static struct queued_event *event_new(const struct kube_events *q, const struct kube_event *ev)
{
    const char *ns = ev->namespace_ ? ev->namespace_ : "default"; /* cluster-scoped objects: default */
    struct queued_event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->body = event_body(q, ev, ns);
    if (e->body == NULL) {
        event_free(e);
        return NULL;
    }
    e->dry_run = ev->dry_run;
    snprintf(e->path, sizeof(e->path), "/apis/events.k8s.io/v1/namespaces/%s/events", ns);
    text_copy(e->object, sizeof(e->object), ev->name);
    text_copy(e->action, sizeof(e->action), ev->action);
    return e;
}

/* Counts a failed Event and logs it, unless one was logged less than a second ago. */
static void event_failed(struct kube_events *q, const char *object, const char *action, const char *why)
{
    metrics_event("failed");
    pthread_mutex_lock(&q->fail_lock);
    double now = now_s();
    bool log = q->fail_logged_s == 0 || now - q->fail_logged_s >= 1.0;
    unsigned long unlogged = q->fail_unlogged;
    if (log) {
        q->fail_logged_s = now;
        q->fail_unlogged = 0;
    } else {
        q->fail_unlogged++;
    }
    pthread_mutex_unlock(&q->fail_lock);
    if (!log)
        return;
    char since[24];
    snprintf(since, sizeof(since), "%lu", unlogged);
    log_kv(LOG_WARN, "event not recorded", "object", object, "action", action, "error", why, "unlogged_since",
           unlogged ? since : NULL, NULL);
}

static void event_send(struct kube_events *q, struct queued_event *e, long timeout_ms)
{
    struct kube_response resp;
    char why[256];
    char *body = e->body;
    e->body = NULL; /* kube_send_within frees it */
    int rc = kube_send_within(q->k, "POST", e->path, "application/json", body, e->dry_run, timeout_ms, &resp);
    if (rc == 0 && resp.status == 201) {
        metrics_event("ok");
    } else {
        if (rc != 0)
            text_copy(why, sizeof(why), resp.message);
        else
            snprintf(why, sizeof(why), "HTTP %ld%s%s%s", resp.status, resp.message[0] ? " (" : "", resp.message,
                     resp.message[0] ? ")" : "");
        event_failed(q, e->object, e->action, why);
    }
    kube_response_free(&resp);
}

/* The next Event to send and its timeout; NULL when stopping and the queue is empty or time is up. */
static struct queued_event *event_take(struct kube_events *q, long *timeout_ms)
{
    struct queued_event *e = NULL;
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->stopping)
        pthread_cond_wait(&q->ready, &q->lock);
    long budget = q->stopping ? (long)((q->deadline_s - now_s()) * 1000) : q->timeout_ms;
    if (q->count > 0 && budget > 0) {
        e = q->ring[q->head];
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % KUBE_EVENT_QUEUE_MAX;
        q->count--;
    }
    pthread_mutex_unlock(&q->lock);
    *timeout_ms = budget < q->timeout_ms ? budget : q->timeout_ms;
    return e;
}

static void *sender_main(void *arg)
{
    struct kube_events *q = arg;
    struct queued_event *e;
    long timeout_ms;
    while ((e = event_take(q, &timeout_ms)) != NULL) {
        event_send(q, e, timeout_ms);
        event_free(e);
    }
    return NULL;
}

void kube_events_record(struct kube_events *q, const struct kube_event *ev)
{
    struct queued_event *e = event_new(q, ev);
    if (e == NULL) {
        event_failed(q, ev->name, ev->action, "out of memory");
        return;
    }
    pthread_mutex_lock(&q->lock);
    bool queued = !q->stopping && q->count < KUBE_EVENT_QUEUE_MAX;
    if (queued) {
        q->ring[(q->head + q->count) % KUBE_EVENT_QUEUE_MAX] = e;
        q->count++;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->lock);
    if (!queued) {
        event_free(e);
        metrics_event("dropped");
        log_throttled(&q->dropped_log, LOG_WARN, DROPPED_MSG, 1);
    }
}

int kube_events_start(struct kube_events **out, struct kube *k, long timeout_ms, struct error *err)
{
    struct kube_events *q = calloc(1, sizeof(*q));
    *out = NULL;
    if (q == NULL)
        return error_set(err, "out of memory");
    q->k = k;
    q->timeout_ms = timeout_ms > 0 && timeout_ms < KUBE_EVENT_TIMEOUT_MS ? timeout_ms : KUBE_EVENT_TIMEOUT_MS;
    if (gethostname(q->instance, sizeof(q->instance) - 1) != 0 || !q->instance[0])
        snprintf(q->instance, sizeof(q->instance), "playbookd");
    q->dropped_log = (struct log_throttle)LOG_THROTTLE_INIT;
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->fail_lock, NULL);
    pthread_cond_init(&q->ready, NULL);
    for (; q->n_senders < KUBE_EVENT_SENDERS; q->n_senders++) {
        if (pthread_create(&q->senders[q->n_senders], NULL, sender_main, q) != 0) {
            kube_events_stop(q);
            return error_set(err, "cannot start the Event senders");
        }
    }
    *out = q;
    return 0;
}

void kube_events_stop(struct kube_events *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    q->deadline_s = now_s() + KUBE_EVENT_DRAIN_MS / 1000.0;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
    for (size_t i = 0; i < q->n_senders; i++)
        pthread_join(q->senders[i], NULL);
    unsigned long left = q->count; /* the senders are gone: no lock needed */
    for (; q->count > 0; q->count--, q->head = (q->head + 1) % KUBE_EVENT_QUEUE_MAX) {
        event_free(q->ring[q->head]);
        metrics_event("dropped");
    }
    log_throttle_flush(&q->dropped_log, LOG_WARN, DROPPED_MSG);
    if (left > 0) {
        char count[24];
        snprintf(count, sizeof(count), "%lu", left);
        log_kv(LOG_WARN, "events dropped: not sent in time at shutdown", "count", count, NULL);
    }
    pthread_mutex_lock(&q->fail_lock);
    unsigned long unlogged = q->fail_unlogged;
    pthread_mutex_unlock(&q->fail_lock);
    if (unlogged > 0) {
        char count[24];
        snprintf(count, sizeof(count), "%lu", unlogged);
        log_kv(LOG_WARN, "events not recorded, not logged one by one", "count", count, NULL);
    }
    pthread_cond_destroy(&q->ready);
    pthread_mutex_destroy(&q->fail_lock);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
