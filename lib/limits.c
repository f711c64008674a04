/*
 * limits.c: the rate limiters of limits.h.
 *
 * A limiter keeps the times of the slots taken in the last window in a ring, oldest first, in time order
 * (a time earlier than the newest, from a thread that read the clock a moment before another, is stored
 * as the newest: the order holds and the slot lasts a moment longer, never shorter). Taking drops the
 * slots older than the window, then grants while fewer than count remain. Releasing removes one slot with
 * the given time, searched from the newest (a slot is given back soon after it was taken, so the search
 * is short). The ring grows by doubling up to count; it never shrinks while the limiter lives.
 *
 * The set is a list under its own lock, with a reference count per limiter: every config that uses a name
 * holds a reference, so during a reload the old and new configs share one limiter and its history. Lock
 * order: the set, then a limiter. Log lines are written after the limiter's lock is released.
 */
#include "playbookd/limits.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/log.h"

#define NAME_MAX_LEN 63
#define MIN_CAP 16

struct limiter {
    struct limits *set;
    struct limiter *next; /* in the set; next and refs under the set's lock */
    unsigned long refs;
    char name[NAME_MAX_LEN + 1];
    pthread_mutex_t lock; /* guards what follows */
    long count, window_ms;
    int64_t *times; /* the ring: slot i (0 oldest) at times[(head + i) % cap] */
    uint32_t cap, head, n;
    unsigned long refused;  /* in all */
    unsigned long unlogged; /* refusals no line has told yet */
    int64_t logged_ms;      /* when the last line was written */
};

struct limits {
    pthread_mutex_t lock;
    struct limiter *first;
};

/* A log line due about a limiter, taken under its lock and written after. */
struct note {
    bool due;
    unsigned long count;
    char limit[64];
    const char *name;
};

int limits_create(struct limits **out)
{
    struct limits *l = calloc(1, sizeof(*l));
    *out = NULL;
    if (l == NULL)
        return -1;
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void limits_format(long count, long window_ms, char *buf, size_t size)
{
    static const struct {
        long ms;
        const char *unit;
    } units[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    size_t u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && (window_ms == 0 || window_ms % units[u].ms != 0))
        u++;
    snprintf(buf, size, "%ld per %ld%s", count, window_ms / units[u].ms, units[u].unit);
}

/* Under the limiter's lock: the line that tells the refusals so far, due now. */
static void take_note(struct limiter *lim, int64_t now_ms, struct note *note)
{
    note->due = true;
    note->count = lim->unlogged;
    note->name = lim->name;
    limits_format(lim->count, lim->window_ms, note->limit, sizeof(note->limit));
    lim->unlogged = 0;
    lim->logged_ms = now_ms;
}

static void write_note(const struct note *note)
{
    char count[24];
    if (!note->due)
        return;
    snprintf(count, sizeof(count), "%lu", note->count);
    log_kv(LOG_WARN, "rate limit reached: actions skipped", "playbook", note->name[0] ? note->name : NULL, "scope",
           note->name[0] ? "playbook" : "all mutating playbooks", "limit", note->limit, "count", count, NULL);
}

static void limiter_free(struct limiter *lim)
{
    struct note note = {0};
    if (lim->unlogged > 0) /* the playbook is gone from the config: tell its last refusals now */
        take_note(lim, lim->logged_ms, &note);
    write_note(&note);
    pthread_mutex_destroy(&lim->lock);
    free(lim->times);
    free(lim);
}

void limits_destroy(struct limits *l)
{
    if (l == NULL)
        return;
    while (l->first != NULL) {
        struct limiter *lim = l->first;
        l->first = lim->next;
        limiter_free(lim);
    }
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static struct limiter *limiter_new(struct limits *l, const char *name)
{
    struct limiter *lim = calloc(1, sizeof(*lim));
    if (lim == NULL)
        return NULL;
    if (pthread_mutex_init(&lim->lock, NULL) != 0) {
        free(lim);
        return NULL;
    }
    lim->set = l;
    memcpy(lim->name, name, strlen(name) + 1);
    lim->next = l->first;
    l->first = lim;
    return lim;
}

struct limiter *limits_get(struct limits *l, const char *name, long count, long window_ms)
{
    if (count < 1 || count > LIMIT_MAX_COUNT || window_ms < 1 || strlen(name) > NAME_MAX_LEN)
        return NULL;
    pthread_mutex_lock(&l->lock);
    struct limiter *lim = l->first;
    while (lim != NULL && strcmp(lim->name, name) != 0)
        lim = lim->next;
    if (lim == NULL)
        lim = limiter_new(l, name);
    if (lim != NULL) {
        lim->refs++;
        pthread_mutex_lock(&lim->lock);
        lim->count = count;
        lim->window_ms = window_ms;
        pthread_mutex_unlock(&lim->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return lim;
}

void limiter_put(struct limiter *lim)
{
    if (lim == NULL)
        return;
    struct limits *l = lim->set;
    pthread_mutex_lock(&l->lock);
    bool last = --lim->refs == 0;
    if (last) {
        struct limiter **link = &l->first;
        while (*link != lim)
            link = &(*link)->next;
        *link = lim->next;
    }
    pthread_mutex_unlock(&l->lock);
    if (last)
        limiter_free(lim);
}

static int64_t *slot_at(struct limiter *lim, uint32_t i)
{
    return &lim->times[(lim->head + i) % lim->cap];
}

/* Forgets the slots that left the window ending at now_ms. */
static void expire(struct limiter *lim, int64_t now_ms)
{
    while (lim->n > 0 && lim->times[lim->head] <= now_ms - lim->window_ms) {
        lim->head = (lim->head + 1) % lim->cap;
        lim->n--;
    }
}

/* Room for one more slot (n < count holds); -1 when out of memory. */
static int grow(struct limiter *lim)
{
    if (lim->n < lim->cap)
        return 0;
    uint32_t cap = lim->cap < MIN_CAP / 2 ? MIN_CAP : lim->cap * 2;
    if (cap > (uint32_t)lim->count)
        cap = (uint32_t)lim->count;
    int64_t *times = malloc((size_t)cap * sizeof(*times));
    if (times == NULL)
        return -1;
    for (uint32_t i = 0; i < lim->n; i++)
        times[i] = *slot_at(lim, i);
    free(lim->times);
    lim->times = times;
    lim->cap = cap;
    lim->head = 0;
    return 0;
}

bool limiter_take(struct limiter *lim, int64_t now_ms, int64_t *slot)
{
    struct note note = {0};
    pthread_mutex_lock(&lim->lock);
    expire(lim, now_ms);
    bool granted = lim->n < (uint32_t)lim->count && grow(lim) == 0;
    if (granted) {
        int64_t newest = lim->n > 0 ? *slot_at(lim, lim->n - 1) : now_ms;
        *slot = now_ms > newest ? now_ms : newest;
        *slot_at(lim, lim->n++) = *slot;
    } else {
        lim->refused++;
        lim->unlogged++;
        if (lim->unlogged == lim->refused || now_ms - lim->logged_ms >= lim->window_ms)
            take_note(lim, now_ms, &note); /* the first refusal, or the first after a window: tell at once */
    }
    pthread_mutex_unlock(&lim->lock);
    write_note(&note);
    return granted;
}

void limiter_release(struct limiter *lim, int64_t slot)
{
    pthread_mutex_lock(&lim->lock);
    for (uint32_t i = lim->n; i-- > 0 && *slot_at(lim, i) >= slot;) {
        if (*slot_at(lim, i) != slot)
            continue;
        for (uint32_t j = i; j + 1 < lim->n; j++)
            *slot_at(lim, j) = *slot_at(lim, j + 1);
        lim->n--;
        break;
    }
    pthread_mutex_unlock(&lim->lock);
}

void limits_flush(struct limits *l, int64_t now_ms)
{
    pthread_mutex_lock(&l->lock);
    for (struct limiter *lim = l->first; lim != NULL; lim = lim->next) {
        struct note note = {0};
        pthread_mutex_lock(&lim->lock);
        if (lim->unlogged > 0 && now_ms - lim->logged_ms >= lim->window_ms)
            take_note(lim, now_ms, &note);
        pthread_mutex_unlock(&lim->lock);
        write_note(&note);
    }
    pthread_mutex_unlock(&l->lock);
}

size_t limiter_taken(struct limiter *lim, int64_t now_ms)
{
    pthread_mutex_lock(&lim->lock);
    expire(lim, now_ms);
    size_t n = lim->n;
    pthread_mutex_unlock(&lim->lock);
    return n;
}

unsigned long limiter_refused(struct limiter *lim)
{
    pthread_mutex_lock(&lim->lock);
    unsigned long n = lim->refused;
    pthread_mutex_unlock(&lim->lock);
    return n;
}
