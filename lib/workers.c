/*
 * workers.c: the worker pool. One lock guards every lane: a lane per worker for keyed items (a target's
 * alerts, in order) and one shared lane for the rest. A worker takes its own lane first, then the shared
 * one, and sleeps on its own condition variable when both are empty. Submitters wait on `room` while the
 * queue is full.
 */
#include "playbookd/workers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "playbookd/metrics.h"

struct lane {
    struct work *head, *tail;
    size_t n;
};

struct worker {
    struct workers *pool;
    pthread_t thread;
    pthread_cond_t wake;
    struct lane own;
    bool idle; /* waiting on wake and not yet signalled */
};

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t room; /* an item left the queue, or the pool is stopping */
    pthread_cond_t done; /* an item ended */
    struct worker *w;
    size_t n, started;
    struct lane shared;
    size_t capacity, lane_capacity;
    size_t queued, running;
    unsigned long ended; /* items run to their end, for workers_quiet */
    size_t next_idle;    /* where the search for an idle worker starts, to spread shared items */
    bool stopping;
};

static void lane_push(struct lane *l, struct work *w)
{
    w->next = NULL;
    if (l->tail != NULL)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
    l->n++;
}

static struct work *lane_pop(struct lane *l)
{
    struct work *w = l->head;
    if (w == NULL)
        return NULL;
    l->head = w->next;
    if (l->head == NULL)
        l->tail = NULL;
    l->n--;
    return w;
}

/* The next item for worker self, or NULL. Under the lock. */
static struct work *take(struct worker *self)
{
    struct workers *p = self->pool;
    struct work *w = lane_pop(&self->own);
    if (w == NULL)
        w = lane_pop(&p->shared);
    if (w != NULL) {
        p->queued--;
        p->running++;
        metrics_queue_depth(-1);
        pthread_cond_broadcast(&p->room);
    }
    return w;
}

static void *worker_main(void *arg)
{
    struct worker *self = arg;
    struct workers *p = self->pool;
    pthread_setname_np(pthread_self(), "pb-worker"); /* tells them apart in /proc/PID/task (bench, top -H) */
    pthread_mutex_lock(&p->lock);
    for (;;) {
        struct work *w = take(self);
        if (w != NULL) {
            pthread_mutex_unlock(&p->lock);
            w->run(w);
            pthread_mutex_lock(&p->lock);
            p->running--;
            p->ended++;
            pthread_cond_broadcast(&p->done);
            continue;
        }
        if (p->stopping)
            break;
        self->idle = true;
        pthread_cond_wait(&self->wake, &p->lock);
        self->idle = false;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int workers_create(struct workers **out, size_t n, size_t capacity, struct error *err)
{
    *out = NULL;
    if (n == 0 || n > WORKERS_MAX)
        return error_set(err, "workers: between 1 and %d", WORKERS_MAX);
    struct workers *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->w = calloc(n, sizeof(*p->w))) == NULL) {
        free(p);
        return error_set(err, "out of memory");
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->room, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = n;
    p->capacity = capacity < n ? n : capacity;
    p->lane_capacity = p->capacity / n;
    for (; p->started < n; p->started++) {
        struct worker *w = &p->w[p->started];
        w->pool = p;
        pthread_cond_init(&w->wake, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_cond_destroy(&w->wake);
            workers_destroy(p);
            return error_set(err, "workers: cannot start a thread");
        }
    }
    *out = p;
    return 0;
}

/* Wakes a worker for a new shared item: an idle one, if any. Under the lock. */
static void wake_idle(struct workers *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct worker *w = &p->w[(p->next_idle + i) % p->n];
        if (w->idle) {
            w->idle = false; /* signalled: the next shared item wakes another */
            p->next_idle = (p->next_idle + i + 1) % p->n;
            pthread_cond_signal(&w->wake);
            return;
        }
    }
}

/* True when w cannot be queued now: its lane or the whole queue is full. Under the lock. */
static bool full(const struct workers *p, const struct worker *owner)
{
    return p->queued >= p->capacity || (owner != NULL && owner->own.n >= p->lane_capacity);
}

/* Queues w, waiting for room if `wait`; -1 stopping, 1 full (only without wait). */
static int submit(struct workers *p, struct work *w, bool wait)
{
    pthread_mutex_lock(&p->lock);
    struct worker *owner = w->key != 0 ? &p->w[w->key % p->n] : NULL;
    while (wait && !p->stopping && full(p, owner))
        pthread_cond_wait(&p->room, &p->lock);
    if (p->stopping || full(p, owner)) {
        int rc = p->stopping ? -1 : 1;
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    p->queued++;
    metrics_queue_depth(1);
    if (owner != NULL) {
        lane_push(&owner->own, w);
        owner->idle = false;
        pthread_cond_signal(&owner->wake);
    } else {
        lane_push(&p->shared, w);
        wake_idle(p);
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int workers_submit(struct workers *p, struct work *w)
{
    return submit(p, w, true);
}

int workers_try_submit(struct workers *p, struct work *w)
{
    return submit(p, w, false);
}

static struct timespec deadline_after(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

/* Takes every queued item off its lane, in one list. Under the lock. */
static struct work *take_all(struct workers *p)
{
    struct lane all = {0};
    struct work *w;
    for (size_t i = 0; i < p->n; i++)
        while ((w = lane_pop(&p->w[i].own)) != NULL)
            lane_push(&all, w);
    while ((w = lane_pop(&p->shared)) != NULL)
        lane_push(&all, w);
    p->queued -= all.n;
    metrics_queue_depth(-(long)all.n);
    return all.head;
}

size_t workers_finish(struct workers *p, long timeout_ms)
{
    if (p == NULL)
        return 0;
    struct timespec deadline = deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->room); /* submitters waiting for room give up */
    while (p->queued + p->running > 0)
        if (timeout_ms < 0 ? pthread_cond_wait(&p->done, &p->lock) != 0
                           : pthread_cond_timedwait(&p->done, &p->lock, &deadline) != 0)
            break;
    struct work *left = take_all(p);
    pthread_mutex_unlock(&p->lock);
    size_t dropped = 0;
    for (struct work *next; left != NULL; left = next, dropped++) {
        next = left->next;
        left->drop(left);
    }
    return dropped;
}

void workers_destroy(struct workers *p)
{
    if (p == NULL)
        return;
    workers_finish(p, -1);
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->started; i++)
        pthread_cond_signal(&p->w[i].wake);
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < p->started; i++) {
        pthread_join(p->w[i].thread, NULL);
        pthread_cond_destroy(&p->w[i].wake);
    }
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->room);
    pthread_mutex_destroy(&p->lock);
    free(p->w);
    free(p);
}

bool workers_quiet(struct workers *p, unsigned long *ended)
{
    pthread_mutex_lock(&p->lock);
    bool quiet = p->queued + p->running == 0 && p->ended == *ended;
    *ended = p->ended;
    pthread_mutex_unlock(&p->lock);
    return quiet;
}

uint64_t workers_key(const char *text, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ULL;
    return h != 0 ? h : 1;
}
