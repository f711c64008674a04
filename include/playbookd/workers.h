/*
 * workers.h: the worker pool between receiving and acting. Receiving (NATS, replay, HTTP) submits work
 * items; worker threads run them. The queue is bounded: when it is full, submit waits (backpressure)
 * instead of growing memory, or try_submit says so at once.
 *
 * Items with a key (the target an alert acts on: a pod, else a node) always go to the same worker and
 * run in submission order, so two alerts about one pod never race. Items without a key (alerts that only
 * notify) go to a shared lane that any idle worker takes, after its own keyed items, so a flood of
 * notifications neither waits behind one busy target nor holds back an alert that acts on the cluster.
 */
#ifndef PLAYBOOKD_WORKERS_H
#define PLAYBOOKD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "playbookd/error.h"

#define WORKERS_MAX 256

/* One unit of work, embedded in the caller's own struct (intrusive: no allocation here). */
struct work {
    struct work *next;
    uint64_t key;                 /* 0: any worker; else the lane key % n_workers, in order */
    void (*run)(struct work *w);  /* runs the item and frees it */
    void (*drop)(struct work *w); /* the item will never run (stop deadline): account for it and free it */
};

struct workers;

/* Starts n threads (1..WORKERS_MAX) with room for capacity queued items in all (at least n). */
int workers_create(struct workers **out, size_t n, size_t capacity, struct error *err);

/* Queues w, waiting while its lane or the whole queue is full. -1 once the pool is stopping (w untouched). */
int workers_submit(struct workers *p, struct work *w);
/* The same without waiting: 1 when its lane or the whole queue is full (w untouched), for inputs that must
 * answer at once (HTTP: 503). */
int workers_try_submit(struct workers *p, struct work *w);

/*
 * Stops taking new items (submitters waiting for room get -1), lets the workers finish what is queued
 * and running for up to timeout_ms (negative: no limit), then drops what is still queued (each item's
 * drop is called here). Returns how many were dropped. Items still running go on: see workers_destroy.
 */
size_t workers_finish(struct workers *p, long timeout_ms);
/* Finishes with no deadline if need be, waits for running items to end, joins the threads. NULL: no-op. */
void workers_destroy(struct workers *p);

/*
 * True when nothing is queued or running and no item ended since the previous call, which left the
 * count of ended items in *ended (start it at 0). Polled once a second, it tells that a burst is over.
 */
bool workers_quiet(struct workers *p, unsigned long *ended);

/* A stable 64-bit hash of text (FNV-1a), never 0: a key for workers_submit. */
uint64_t workers_key(const char *text, size_t len);

#endif
