/*
 * kube_event.c: events.k8s.io/v1 Events off the action's path. kube_record_event builds the Event at once
 * and queues it without waiting; KUBE_EVENT_SENDERS sender threads POST what is queued, each up to
 * KUBE_EVENT_IN_FLIGHT at a time through an http.c batch (HTTP/2 streams on one connection where the API
 * server speaks it: no thread, connection or wake-up per Event). Best effort and bounded: a full queue drops the Event.
 * Every Event is counted (ok, failed, dropped); failures and drops are logged at most once a second.
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

/* One Event waiting for a sender or in flight: its body, built when it was recorded, and what a failure
 * names. */
struct queued_event {
    struct sender *sender; /* the one that sends it, once taken */
    char *body;
    bool dry_run;
    bool retried;   /* sent again with a fresh token after a 401 */
    char path[128]; /* the namespace is a DNS-1123 label: at most 63 */
    char object[254];
    char action[64];
};

struct kube_events {
    struct kube *k;
    long timeout_ms;      /* of one Event request */
    char instance[128];   /* this replica: reportingInstance */
    pthread_mutex_t lock; /* guards the ring, stopping and deadline_s */
    struct queued_event *ring[KUBE_EVENT_QUEUE_MAX];
    size_t head, count;
    bool stopping;
    double deadline_s; /* when stopping: no Event starts after this */
    struct sender {
        struct kube_events *q;
        struct http_batch *batch; /* its requests in flight */
        pthread_t thread;
        bool started;
        size_t room; /* under lock: how many more it could start, as of its last take */
    } senders[KUBE_EVENT_SENDERS];
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

void kube_micro_time(char *buf, size_t size)
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
    kube_micro_time(when, sizeof(when));
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
    cJSON_AddStringToObject(e, "reason", ev->reason ? ev->reason : "FalcoAlert");
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

static void event_sent(void *arg, struct http_response *http, const char *error);

/* Puts e in flight on s, with a fresh token when fresh_token; counts it failed if it cannot start. */
static void event_start(struct sender *s, struct queued_event *e, long timeout_ms, bool fresh_token)
{
    struct kube_events *q = s->q;
    struct kube_prepared *req = malloc(sizeof(*req));
    e->sender = s;
    struct error err = {.msg = "out of memory"};
    if (req == NULL ||
        kube_prepare(q->k, "POST", e->path, "application/json", e->body, e->dry_run, timeout_ms, fresh_token, req,
                     &err) != 0 ||
        http_batch_add(s->batch, &req->http, event_sent, e, &err) != 0) {
        event_failed(q, e->object, e->action, err.msg);
        event_free(e);
    }
    free(req);
}

static void event_sent(void *arg, struct http_response *http, const char *error)
{
    struct queued_event *e = arg;
    struct kube_events *q = e->sender->q;
    char why[256];
    if (http != NULL && http->status == 201) {
        metrics_event("ok");
    } else if (http != NULL && http->status == 401 && !e->retried) {
        e->retried = true; /* a rotated token: once more with the file read again */
        event_start(e->sender, e, q->timeout_ms, true);
        return;
    } else if (http == NULL) {
        event_failed(q, e->object, e->action, error);
    } else {
        struct kube_response resp = {0};
        kube_response_take(&resp, http);
        const char *detail = resp.message[0] ? resp.message : resp.status < 300 ? "expected 201 Created" : "";
        snprintf(why, sizeof(why), "HTTP %ld%s%s%s", resp.status, detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
        kube_response_free(&resp);
        event_failed(q, e->object, e->action, why);
    }
    event_free(e);
}

/* Under q->lock: the started sender with the most room other than except (NULL: any), or NULL when none has
 * room: the ones in flight take what is queued as their requests end. */
static struct sender *sender_with_room(struct kube_events *q, const struct sender *except)
{
    struct sender *best = NULL;
    for (size_t i = 0; i < KUBE_EVENT_SENDERS; i++) {
        struct sender *s = &q->senders[i];
        if (s->started && s != except && s->room > 0 && (best == NULL || s->room > best->room))
            best = s;
    }
    return best;
}

/* Takes what may start now into out (at most room); false once the sender should end: stopping, and
 * nothing in flight and nothing more may start. When it took all its room and more is queued, another
 * sender with room is woken (one sender is woken per Event queued into an empty queue, not all). */
static bool events_take(struct sender *s, size_t in_flight, struct queued_event **out, size_t room, size_t *n,
                        long *timeout_ms)
{
    struct kube_events *q = s->q;
    struct sender *next = NULL;
    pthread_mutex_lock(&q->lock);
    long budget = q->stopping ? (long)((q->deadline_s - now_s()) * 1000) : q->timeout_ms;
    *n = 0;
    for (; budget > 0 && q->count > 0 && *n < room; (*n)++) {
        out[*n] = q->ring[q->head];
        q->ring[q->head] = NULL;
        q->head = (q->head + 1) % KUBE_EVENT_QUEUE_MAX;
        q->count--;
    }
    bool go_on = !q->stopping || in_flight + *n > 0 || (q->count > 0 && budget > 0);
    s->room = room - *n;
    if (*n > 0 && q->count > 0 && !q->stopping)
        next = sender_with_room(q, s);
    pthread_mutex_unlock(&q->lock);
    if (next != NULL)
        http_batch_wakeup(next->batch);
    *timeout_ms = budget < q->timeout_ms ? budget : q->timeout_ms;
    return go_on;
}

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    struct queued_event *taken[KUBE_EVENT_IN_FLIGHT];
    size_t in_flight = 0, n;
    long timeout_ms;
    pthread_setname_np(pthread_self(), "pb-events");
    while (events_take(s, in_flight, taken, KUBE_EVENT_IN_FLIGHT - in_flight, &n, &timeout_ms)) {
        for (size_t i = 0; i < n; i++)
            event_start(s, taken[i], timeout_ms, false);
        in_flight = http_batch_run(s->batch, 1000); /* a queued Event or a stop wakes it */
    }
    return NULL;
}

/* Ends the wait of every sender: at stop, each drains what it has. */
static void senders_wake(struct kube_events *q)
{
    for (size_t i = 0; i < KUBE_EVENT_SENDERS; i++)
        if (q->senders[i].started)
            http_batch_wakeup(q->senders[i].batch);
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
    /* Into an empty queue: one sender with room is woken. Else one was woken already and has not taken it
     * yet, or every sender is full and takes it as a request of its own ends. */
    struct sender *wake = queued && q->count == 0 ? sender_with_room(q, NULL) : NULL;
    if (queued) {
        q->ring[(q->head + q->count) % KUBE_EVENT_QUEUE_MAX] = e;
        q->count++;
    }
    pthread_mutex_unlock(&q->lock);
    if (wake != NULL)
        http_batch_wakeup(wake->batch);
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
    for (size_t i = 0; i < KUBE_EVENT_SENDERS; i++) {
        struct sender *s = &q->senders[i];
        s->q = q;
        s->room = KUBE_EVENT_IN_FLIGHT;
        bool ok = http_batch_create(&s->batch, err) == 0;
        pthread_mutex_lock(&q->lock); /* the senders started already read started and room */
        ok = ok && (s->started = pthread_create(&s->thread, NULL, sender_main, s) == 0);
        pthread_mutex_unlock(&q->lock);
        if (!ok) {
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
    pthread_mutex_unlock(&q->lock);
    senders_wake(q);
    for (size_t i = 0; i < KUBE_EVENT_SENDERS; i++) {
        if (q->senders[i].started)
            pthread_join(q->senders[i].thread, NULL);
        http_batch_destroy(q->senders[i].batch); /* nothing is in flight: its sender waited for it */
    }
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
    pthread_mutex_destroy(&q->fail_lock);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
