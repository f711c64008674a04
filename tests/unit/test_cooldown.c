/*
 * test_cooldown.c: unit tests for the cooldown table: claim, refuse and expire on an injected clock, the
 * suppressed count reported once, release, eviction of the oldest (counted, reported to metrics and the log),
 * a full table of 100,000 keys, and threads racing for one key (build it with SANITIZER=thread too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/cooldown.h"
#include "playbookd/log.h"
#include "playbookd/metrics.h"

#include "log_capture.h"

static struct cooldown *make(size_t max_keys)
{
    struct cooldown *c = NULL;
    assert_int_equal(cooldown_create(&c, max_keys), 0);
    assert_non_null(c);
    return c;
}

/* Claims the string key; returns the claim's result and, through *suppressed, what it reported. */
static bool claim(struct cooldown *c, const char *key, long window_ms, int64_t now_ms, unsigned long *suppressed)
{
    unsigned long dummy;
    return cooldown_claim(c, key, strlen(key), window_ms, now_ms, suppressed ? suppressed : &dummy);
}

static void expect_granted(struct cooldown *c, const char *key, long window_ms, int64_t now_ms,
                           unsigned long suppressed)
{
    unsigned long got = 12345;
    if (!claim(c, key, window_ms, now_ms, &got))
        fail_msg("claim of '%s' at %lld was refused", key, (long long)now_ms);
    if (got != suppressed)
        fail_msg("claim of '%s' at %lld reported %lu suppressed, expected %lu", key, (long long)now_ms, got,
                 suppressed);
}

static void expect_refused(struct cooldown *c, const char *key, long window_ms, int64_t now_ms)
{
    if (claim(c, key, window_ms, now_ms, NULL))
        fail_msg("claim of '%s' at %lld was granted", key, (long long)now_ms);
}

static void test_create_destroy(void **state)
{
    (void)state;
    cooldown_destroy(NULL);
    struct cooldown *c = (struct cooldown *)(uintptr_t)1;
    assert_int_equal(cooldown_create(&c, (size_t)1 << 40), -1);
    assert_null(c);
    c = make(0);
    assert_int_equal(cooldown_size(c), 0);
    assert_int_equal(cooldown_evicted(c), 0);
    cooldown_destroy(c);
}

static void test_claim_refuse_expire(void **state)
{
    (void)state;
    struct cooldown *c = make(0);
    expect_granted(c, "kill/default/web-1", 1000, 5000, 0);
    expect_refused(c, "kill/default/web-1", 1000, 5000);
    expect_refused(c, "kill/default/web-1", 1000, 5999);
    expect_granted(c, "kill/default/web-2", 1000, 5999, 0);   /* another target */
    expect_granted(c, "notify/default/web-1", 1000, 5999, 0); /* another playbook */
    expect_granted(c, "kill/default/web-1", 1000, 6000, 2);   /* the window ended: 2 were suppressed */
    expect_refused(c, "kill/default/web-1", 1000, 6500);
    expect_granted(c, "kill/default/web-1", 1000, 7000, 1);
    expect_granted(c, "kill/default/web-1", 1000, 8000, 0); /* each refusal is reported once */
    expect_granted(c, "kill/default/web-1", 1000, 100000, 0);
    assert_int_equal(cooldown_size(c), 3);

    /* A window of 0 refuses nothing; a huge one does not overflow. */
    expect_granted(c, "zero", 0, 1, 0);
    expect_granted(c, "zero", 0, 1, 0);
    expect_granted(c, "forever", 9223372036854775807L, 1000, 0);
    expect_refused(c, "forever", 0, INT64_MAX - 1);

    /* A NULL suppressed is allowed. */
    assert_true(cooldown_claim(c, "x", 1, 10, 0, NULL));
    assert_false(cooldown_claim(c, "x", 1, 10, 5, NULL));
    cooldown_destroy(c);
}

static void test_keys_are_bytes(void **state)
{
    (void)state;
    struct cooldown *c = make(0);
    char a[4096], b[4096];
    memset(a, 'k', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[sizeof(b) - 1] = 'K';
    assert_true(cooldown_claim(c, a, sizeof(a), 1000, 0, NULL));
    assert_true(cooldown_claim(c, b, sizeof(b), 1000, 0, NULL));     /* differs in the last byte */
    assert_true(cooldown_claim(c, a, sizeof(a) - 1, 1000, 0, NULL)); /* a prefix */
    assert_true(cooldown_claim(c, "a\0b", 3, 1000, 0, NULL));        /* NUL inside */
    assert_true(cooldown_claim(c, "a\0c", 3, 1000, 0, NULL));
    assert_true(cooldown_claim(c, NULL, 0, 1000, 0, NULL)); /* the empty key */
    assert_false(cooldown_claim(c, "", 0, 1000, 1, NULL));
    assert_false(cooldown_claim(c, a, sizeof(a), 1000, 1, NULL));
    assert_false(cooldown_claim(c, b, sizeof(b), 1000, 1, NULL));
    assert_false(cooldown_claim(c, "a\0b", 3, 1000, 1, NULL));
    for (size_t len = 1; len <= 40; len++) /* every tail length of the hash */
        assert_true(cooldown_claim(c, a, len, 1000, 0, NULL));
    for (size_t len = 1; len <= 40; len++)
        assert_false(cooldown_claim(c, a, len, 1000, 1, NULL));
    assert_int_equal(cooldown_size(c), 6 + 40);
    cooldown_destroy(c);
}

static void test_release(void **state)
{
    (void)state;
    struct cooldown *c = make(0);
    expect_granted(c, "k", 1000, 0, 0);
    expect_refused(c, "k", 1000, 10);
    cooldown_release(c, "k", 1); /* the action failed: the next alert may act */
    expect_granted(c, "k", 1000, 20, 1);
    expect_refused(c, "k", 1000, 30);
    cooldown_release(c, "absent", 6); /* nothing to release */
    assert_int_equal(cooldown_size(c), 1);
    cooldown_release(c, "k", 1);
    cooldown_release(c, "k", 1); /* twice is harmless */
    expect_granted(c, "k", 1000, 40, 1);
    expect_refused(c, "k", 1000, 1039);
    expect_granted(c, "k", 1000, 1040, 1);
    cooldown_destroy(c);
}

static unsigned long metrics_evicted(void)
{
    struct metrics_snapshot m;
    metrics_snapshot(&m);
    return m.cooldown_evicted;
}

/* The first test to evict: the log's throttle has not logged yet, so the first eviction is logged at once. */
static void test_evict_oldest(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    unsigned long metrics_before = metrics_evicted();
    struct cooldown *c = make(3);
    expect_granted(c, "a", 1000, 0, 0);
    expect_granted(c, "b", 1000, 1, 0);
    expect_granted(c, "c", 1000, 2, 0);
    expect_refused(c, "a", 1000, 3); /* a refused claim counts as use: b is now the oldest */
    assert_int_equal(cooldown_size(c), 3);
    assert_int_equal(cooldown_evicted(c), 0);

    expect_granted(c, "d", 1000, 4, 0); /* evicts b */
    assert_int_equal(cooldown_size(c), 3);
    assert_int_equal(cooldown_evicted(c), 1);
    expect_refused(c, "a", 1000, 5);    /* a stayed (and is the newest again) */
    expect_refused(c, "c", 1000, 5);    /* so did c, now the newest */
    expect_granted(c, "b", 1000, 6, 0); /* b was forgotten: granted again; evicts d */
    assert_int_equal(cooldown_evicted(c), 2);
    expect_granted(c, "d", 1000, 7, 0); /* evicts a, and a's refusal count with it */
    expect_granted(c, "a", 1000, 8, 0); /* evicts c */
    assert_int_equal(cooldown_evicted(c), 4);
    assert_int_equal(cooldown_size(c), 3);
    assert_int_equal(metrics_evicted() - metrics_before, 4);
    cooldown_destroy(c);

    char *log = captured_log(mem);
    if (strstr(log, "cooldown table full") == NULL || strstr(log, "count=1") == NULL)
        fail_msg("no eviction in the log:\n%s", log);
    if (strstr(strchr(log, '\n') + 1, "cooldown") != NULL)
        fail_msg("more than one eviction line within a second:\n%s", log);
    free(log);
}

static size_t key_of(char *buf, size_t size, unsigned i)
{
    return (size_t)snprintf(buf, size, "delete-pod/namespace-%u/pod-%u", i % 97, i);
}

static void test_many_keys(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    struct cooldown *c = make(0); /* COOLDOWN_MAX_KEYS */
    char key[64];
    for (unsigned i = 0; i < 2 * COOLDOWN_MAX_KEYS; i++) {
        size_t len = key_of(key, sizeof(key), i);
        if (!cooldown_claim(c, key, len, 60000, 0, NULL))
            fail_msg("distinct key %u was refused", i);
    }
    assert_int_equal(cooldown_size(c), COOLDOWN_MAX_KEYS);
    assert_int_equal(cooldown_evicted(c), COOLDOWN_MAX_KEYS);
    for (unsigned i = COOLDOWN_MAX_KEYS; i < 2 * COOLDOWN_MAX_KEYS; i++) { /* the newest all stayed */
        size_t len = key_of(key, sizeof(key), i);
        if (cooldown_claim(c, key, len, 60000, 1, NULL))
            fail_msg("key %u was forgotten", i);
    }
    assert_int_equal(cooldown_evicted(c), COOLDOWN_MAX_KEYS);
    size_t len = key_of(key, sizeof(key), 0); /* the oldest went */
    assert_true(cooldown_claim(c, key, len, 60000, 2, NULL));
    assert_int_equal(cooldown_evicted(c), COOLDOWN_MAX_KEYS + 1);
    assert_int_equal(cooldown_size(c), COOLDOWN_MAX_KEYS);
    cooldown_destroy(c);
    free(captured_log(mem));
}

#define THREADS 8
#define CLAIMS 10000

struct racer {
    struct cooldown *c;
    pthread_barrier_t *start;
    unsigned id;
    atomic_ulong *granted;
};

/* Claims the same key CLAIMS times, all at once with the other threads, within one window. */
static void *race_one_key(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < CLAIMS; i++)
        if (cooldown_claim(r->c, "kill/default/web-1", 18, 60000, 1000 + i, NULL))
            atomic_fetch_add(r->granted, 1);
    return NULL;
}

/* Claims keys of its own into a small table, so that the threads evict each other's. */
static void *race_distinct_keys(void *arg)
{
    struct racer *r = arg;
    char key[64];
    pthread_barrier_wait(r->start);
    for (unsigned i = 0; i < CLAIMS; i++) {
        size_t len = key_of(key, sizeof(key), r->id * CLAIMS + i);
        if (cooldown_claim(r->c, key, len, 60000, 1000, NULL))
            atomic_fetch_add(r->granted, 1);
        if (i % 7 == 0)
            cooldown_release(r->c, key, len);
    }
    return NULL;
}

static unsigned long race(struct cooldown *c, void *(*fn)(void *))
{
    pthread_t threads[THREADS];
    struct racer racers[THREADS];
    pthread_barrier_t start;
    atomic_ulong granted = 0;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (unsigned t = 0; t < THREADS; t++) {
        racers[t] = (struct racer){.c = c, .start = &start, .id = t, .granted = &granted};
        assert_int_equal(pthread_create(&threads[t], NULL, fn, &racers[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&start);
    return atomic_load(&granted);
}

static void test_threads_one_key(void **state)
{
    (void)state;
    struct cooldown *c = make(0);
    assert_int_equal(race(c, race_one_key), 1); /* 80,000 identical alerts: one action */
    expect_granted(c, "kill/default/web-1", 60000, 1000 + CLAIMS + 60000, THREADS * CLAIMS - 1);
    assert_int_equal(cooldown_size(c), 1);
    cooldown_destroy(c);
}

static void test_threads_evicting(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    struct cooldown *c = make(1000);
    assert_int_equal(race(c, race_distinct_keys), THREADS * CLAIMS);
    assert_int_equal(cooldown_size(c), 1000);
    assert_int_equal(cooldown_evicted(c), THREADS * CLAIMS - 1000);
    cooldown_destroy(c);
    free(captured_log(mem));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_destroy),  cmocka_unit_test(test_claim_refuse_expire),
        cmocka_unit_test(test_keys_are_bytes),  cmocka_unit_test(test_release),
        cmocka_unit_test(test_evict_oldest),    cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_threads_one_key), cmocka_unit_test(test_threads_evicting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
