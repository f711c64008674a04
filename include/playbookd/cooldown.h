/*
 * cooldown.h: storm control. A table of claims, one per key (a playbook and its target): while a claim
 * is live, further actions with that key are refused and counted, and the next claim after the window
 * learns how many were refused. The table is bounded: past max_keys the oldest entry is evicted, counted
 * and logged. Safe to use from any thread.
 */
#ifndef PLAYBOOKD_COOLDOWN_H
#define PLAYBOOKD_COOLDOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COOLDOWN_MAX_KEYS 100000

struct cooldown;

/* max_keys: how many keys are remembered at most (0: COOLDOWN_MAX_KEYS). */
int cooldown_create(struct cooldown **out, size_t max_keys);
void cooldown_destroy(struct cooldown *c); /* NULL is a no-op */

/*
 * Claims key (len bytes, any content) for window_ms from now_ms (a monotonic clock in milliseconds).
 * true: no live claim held the key; it is now claimed, and *suppressed is how many claims were refused
 * since the previous successful one (each refusal is reported once). false: a live claim holds the key;
 * this refusal is counted.
 */
bool cooldown_claim(struct cooldown *c, const void *key, size_t len, long window_ms, int64_t now_ms,
                    unsigned long *suppressed);

/* True when a live claim holds key until at least until_ms: a claim now would be refused. Counts nothing. */
bool cooldown_held(struct cooldown *c, const void *key, size_t len, int64_t until_ms);

/* Gives back a claim whose action had no effect (it failed), so the next alert may act; counts are kept. */
void cooldown_release(struct cooldown *c, const void *key, size_t len);

/* Keys evicted so far because the table was full. */
unsigned long cooldown_evicted(struct cooldown *c);
/* Keys held now (live or expired, until evicted). */
size_t cooldown_size(struct cooldown *c);

#endif
