/*
 * cooldown.c: the storm-control table of cooldown.h.
 *
 * An entry keeps a 128-bit hash of its key, not the key, so it has a small fixed size whatever the key's
 * length: 40 bytes, in one array grown as keys arrive (never past max_keys), found through a chained hash
 * table of uint32 bucket heads (a power of two, at least one bucket per entry). The seed of the hash is
 * random per table, so keys from alerts cannot be chosen to collide.
 *
 * Age is a doubly linked list through the entries, newest first, ordered by the last claim: every
 * cooldown_claim of a key, granted or refused, makes it the newest (cooldown_release does not). A key whose
 * storm is still going on therefore stays; when the table is full the key not claimed for the longest time
 * is evicted and its slot reused. Entries are never freed otherwise: an expired entry keeps its refusal
 * count until its next claim reports it. One mutex guards the table; metrics and the log are updated after
 * it is released.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#include "playbookd/cooldown.h"
#include "playbookd/log.h"
#include "playbookd/metrics.h"

#define NONE UINT32_MAX
#define MIN_SLOTS 64
#define MAX_MAX_KEYS (1UL << 31) /* buckets stay within uint32 indices */

struct entry {
    uint64_t h1, h2;       /* the key's hash, which stands for the key */
    int64_t until_ms;      /* the claim is live while now_ms < until_ms */
    uint32_t refused;      /* claims refused since the last granted one (saturates) */
    uint32_t chain;        /* the next entry in the same bucket */
    uint32_t newer, older; /* the age list */
};

_Static_assert(sizeof(struct entry) == 40, "an entry is 40 bytes, as the comment at the top says");

struct cooldown {
    pthread_mutex_t lock;
    uint64_t seed;
    uint32_t max_keys;
    struct entry *entries;
    uint32_t n, cap;   /* entries in use, allocated */
    uint32_t *buckets; /* heads of chains, NONE when empty */
    uint32_t n_buckets;
    uint32_t newest, oldest;
    unsigned long evicted;
};

static struct log_throttle evict_log = LOG_THROTTLE_INIT;

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

#define C1 0x87c37b91114253d5ULL
#define C2 0x4cf5ad432745937fULL

static uint64_t mix_k1(uint64_t k1)
{
    return rotl64(k1 * C1, 31) * C2;
}

static uint64_t mix_k2(uint64_t k2)
{
    return rotl64(k2 * C2, 33) * C1;
}

/* MurmurHash3 x64 128 (Austin Appleby, public domain) with a 64-bit seed: the 128-bit identity of a key. */
static void hash_key(const void *key, size_t len, uint64_t seed, uint64_t *out1, uint64_t *out2)
{
    const unsigned char *p = key;
    uint64_t h1 = seed, h2 = seed ^ 0x9e3779b97f4a7c15ULL, k1, k2;
    for (size_t i = 0; i < len / 16; i++, p += 16) {
        memcpy(&k1, p, 8);
        memcpy(&k2, p + 8, 8);
        h1 = (rotl64(h1 ^ mix_k1(k1), 27) + h2) * 5 + 0x52dce729;
        h2 = (rotl64(h2 ^ mix_k2(k2), 31) + h1) * 5 + 0x38495ab5;
    }
    size_t rest = len & 15;
    k1 = k2 = 0;
    for (size_t i = rest; i > 8; i--)
        k2 ^= (uint64_t)p[i - 1] << ((i - 9) * 8);
    for (size_t i = rest < 8 ? rest : 8; i > 0; i--)
        k1 ^= (uint64_t)p[i - 1] << ((i - 1) * 8);
    if (rest > 8)
        h2 ^= mix_k2(k2);
    if (rest > 0)
        h1 ^= mix_k1(k1);
    h1 ^= len;
    h2 ^= len;
    h1 += h2;
    h2 += h1;
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 += h2;
    h2 += h1;
    *out1 = h1;
    *out2 = h2;
}

static uint64_t random_seed(const void *salt)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return fmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)salt);
}

int cooldown_create(struct cooldown **out, size_t max_keys)
{
    *out = NULL;
    if (max_keys == 0)
        max_keys = COOLDOWN_MAX_KEYS;
    if (max_keys > MAX_MAX_KEYS)
        return -1;
    struct cooldown *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return -1;
    }
    c->seed = random_seed(c);
    c->max_keys = (uint32_t)max_keys;
    c->newest = c->oldest = NONE;
    *out = c;
    return 0;
}

void cooldown_destroy(struct cooldown *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->entries);
    free(c->buckets);
    free(c);
}

static uint32_t *bucket_of(struct cooldown *c, uint64_t h1)
{
    return &c->buckets[h1 & (c->n_buckets - 1)];
}

/* The entry with this hash, or NONE. */
static uint32_t find(struct cooldown *c, uint64_t h1, uint64_t h2)
{
    if (c->n_buckets == 0)
        return NONE;
    for (uint32_t i = *bucket_of(c, h1); i != NONE; i = c->entries[i].chain)
        if (c->entries[i].h1 == h1 && c->entries[i].h2 == h2)
            return i;
    return NONE;
}

static void chain_unlink(struct cooldown *c, uint32_t i)
{
    uint32_t *link = bucket_of(c, c->entries[i].h1);
    while (*link != i)
        link = &c->entries[*link].chain;
    *link = c->entries[i].chain;
}

static void chain_link(struct cooldown *c, uint32_t i)
{
    uint32_t *head = bucket_of(c, c->entries[i].h1);
    c->entries[i].chain = *head;
    *head = i;
}

static void age_unlink(struct cooldown *c, uint32_t i)
{
    struct entry *e = &c->entries[i];
    if (e->newer != NONE)
        c->entries[e->newer].older = e->older;
    else
        c->newest = e->older;
    if (e->older != NONE)
        c->entries[e->older].newer = e->newer;
    else
        c->oldest = e->newer;
}

static void age_push_newest(struct cooldown *c, uint32_t i)
{
    struct entry *e = &c->entries[i];
    e->newer = NONE;
    e->older = c->newest;
    if (c->newest != NONE)
        c->entries[c->newest].newer = i;
    c->newest = i;
    if (c->oldest == NONE)
        c->oldest = i;
}

static void touch(struct cooldown *c, uint32_t i)
{
    if (c->newest != i) {
        age_unlink(c, i);
        age_push_newest(c, i);
    }
}

/* Room for one more entry in the array; -1 when out of memory. */
static int grow_entries(struct cooldown *c)
{
    if (c->n < c->cap)
        return 0;
    uint32_t cap = c->cap < MIN_SLOTS / 2 ? MIN_SLOTS : c->cap * 2;
    if (cap > c->max_keys || cap < c->cap)
        cap = c->max_keys;
    struct entry *grown = realloc(c->entries, (size_t)cap * sizeof(*grown));
    if (grown == NULL)
        return -1;
    c->entries = grown;
    c->cap = cap;
    return 0;
}

/* At least one bucket per entry once one more is added; rehashes into twice as many. -1: out of memory. */
static int grow_buckets(struct cooldown *c)
{
    if (c->n < c->n_buckets)
        return 0;
    uint32_t n_buckets = c->n_buckets ? c->n_buckets * 2 : MIN_SLOTS;
    uint32_t *buckets = malloc((size_t)n_buckets * sizeof(*buckets));
    if (buckets == NULL)
        return -1;
    free(c->buckets);
    c->buckets = buckets;
    c->n_buckets = n_buckets;
    memset(buckets, 0xff, (size_t)n_buckets * sizeof(*buckets)); /* NONE everywhere */
    for (uint32_t i = 0; i < c->n; i++)
        chain_link(c, i);
    return 0;
}

/* Forgets the oldest entry and returns its slot for reuse. */
static uint32_t evict_oldest(struct cooldown *c)
{
    uint32_t i = c->oldest;
    chain_unlink(c, i);
    age_unlink(c, i);
    c->evicted++;
    return i;
}

/*
 * A new entry for the hash, the newest, not claimed yet; *evicted tells whether the oldest made room
 * (the table is full, or memory is short). NONE when there is no memory and nothing to evict.
 */
static uint32_t insert(struct cooldown *c, uint64_t h1, uint64_t h2, bool *evicted)
{
    uint32_t i;
    *evicted = c->n == c->max_keys || grow_entries(c) != 0 || grow_buckets(c) != 0;
    if (*evicted && c->n == 0)
        return NONE;
    i = *evicted ? evict_oldest(c) : c->n++;
    c->entries[i] = (struct entry){.h1 = h1, .h2 = h2, .until_ms = INT64_MIN};
    chain_link(c, i);
    age_push_newest(c, i);
    return i;
}

static int64_t window_end(int64_t now_ms, long window_ms)
{
    if (window_ms <= 0)
        return now_ms;
    return now_ms > INT64_MAX - window_ms ? INT64_MAX : now_ms + window_ms;
}

/* Grants or refuses a claim on the entry; under the lock. */
static bool claim_entry(struct entry *e, long window_ms, int64_t now_ms, unsigned long *suppressed)
{
    if (now_ms < e->until_ms) {
        if (e->refused < UINT32_MAX)
            e->refused++;
        return false;
    }
    if (suppressed != NULL)
        *suppressed = e->refused;
    e->refused = 0;
    e->until_ms = window_end(now_ms, window_ms);
    return true;
}

static void report_eviction(void)
{
    metrics_cooldown_evicted(1);
    log_throttled(&evict_log, LOG_WARN, "cooldown table full: keys not claimed for the longest time forgotten", 1);
}

bool cooldown_claim(struct cooldown *c, const void *key, size_t len, long window_ms, int64_t now_ms,
                    unsigned long *suppressed)
{
    uint64_t h1, h2;
    bool granted = true, evicted = false;
    hash_key(key, len, c->seed, &h1, &h2);
    if (suppressed != NULL)
        *suppressed = 0;

    pthread_mutex_lock(&c->lock);
    uint32_t i = find(c, h1, h2);
    if (i == NONE)
        i = insert(c, h1, h2, &evicted);
    if (i != NONE) { /* else no memory at all: act, untracked */
        touch(c, i);
        granted = claim_entry(&c->entries[i], window_ms, now_ms, suppressed);
    }
    pthread_mutex_unlock(&c->lock);

    if (evicted)
        report_eviction();
    return granted;
}

bool cooldown_held(struct cooldown *c, const void *key, size_t len, int64_t until_ms)
{
    uint64_t h1, h2;
    hash_key(key, len, c->seed, &h1, &h2);
    pthread_mutex_lock(&c->lock);
    uint32_t i = find(c, h1, h2);
    bool held = i != NONE && c->entries[i].until_ms > until_ms;
    pthread_mutex_unlock(&c->lock);
    return held;
}

void cooldown_release(struct cooldown *c, const void *key, size_t len)
{
    uint64_t h1, h2;
    hash_key(key, len, c->seed, &h1, &h2);
    pthread_mutex_lock(&c->lock);
    uint32_t i = find(c, h1, h2);
    if (i != NONE)
        c->entries[i].until_ms = INT64_MIN;
    pthread_mutex_unlock(&c->lock);
}

unsigned long cooldown_evicted(struct cooldown *c)
{
    pthread_mutex_lock(&c->lock);
    unsigned long n = c->evicted;
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t cooldown_size(struct cooldown *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}
