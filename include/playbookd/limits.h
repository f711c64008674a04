/*
 * limits.h: rate limits, the blast-radius brake. A limiter allows at most `count` actions in any window of
 * `window_ms`: a sliding log of the times of the actions taken in the last window, so the bound is exact
 * for every window, also across what a fixed window would see as a boundary (which lets 2 x count
 * through). Limiters live in a set, by name, that outlives a config: a reload that keeps a name keeps its
 * history (with the new count and window). Memory: 8 bytes per action taken in the last window, at most
 * LIMIT_MAX_COUNT per limiter, grown as actions come. Refusals are counted and logged by the limiter: the
 * first at once, then at most one line per window with the count. The clock is passed in (monotonic,
 * milliseconds). Safe to use from any thread.
 */
#ifndef PLAYBOOKD_LIMITS_H
#define PLAYBOOKD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LIMIT_MAX_COUNT 100000
#define LIMIT_GLOBAL "" /* the name of the limiter of all mutating playbooks together (no playbook has it) */

struct limits;
struct limiter;

int limits_create(struct limits **out);
void limits_destroy(struct limits *l); /* NULL is a no-op; every limiter must have been put back */

/*
 * The limiter named `name` (a playbook's name, or LIMIT_GLOBAL), now with this count (1..LIMIT_MAX_COUNT)
 * and window: the one in the set, its history kept, or a new one. NULL when out of memory or the count is
 * out of range. Each limits_get is matched by one limiter_put; the last put frees the limiter.
 */
struct limiter *limits_get(struct limits *l, const char *name, long count, long window_ms);
void limiter_put(struct limiter *lim); /* NULL is a no-op */

/*
 * Takes a slot at now_ms: true when fewer than count slots were taken in the window that ends at now_ms;
 * *slot then identifies it for limiter_release. false: refused (or no memory to remember the slot),
 * counted and logged.
 */
bool limiter_take(struct limiter *lim, int64_t now_ms, int64_t *slot);
/* Gives back a slot whose action had no effect, so another action may take it. */
void limiter_release(struct limiter *lim, int64_t slot);

/* Logs the refusals no line has told yet, of each limiter whose window has passed since its last line.
 * Call it every second or so, so that the end of a storm is logged too. */
void limits_flush(struct limits *l, int64_t now_ms);

/* Slots live at now_ms, and refusals so far (tests, introspection). */
size_t limiter_taken(struct limiter *lim, int64_t now_ms);
unsigned long limiter_refused(struct limiter *lim);

/* "10 per 1m", "20 per 90s", "5 per 1h": a limit as the config writes it, for logs and reasons. */
void limits_format(long count, long window_ms, char *buf, size_t size);

#endif
