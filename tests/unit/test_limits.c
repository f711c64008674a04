/*
 * test_limits.c: unit tests for the rate limiters: exact sliding windows on an injected clock (no burst of
 * 2 x count across a boundary), slots given back, a clock read out of order between threads, limiters
 * shared by name across configs (history kept, count and window replaced, freed with the last put),
 * refusals logged once per window with the count, a count of 100,000, and threads racing for the slots.
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

#include "playbookd/limits.h"
#include "playbookd/log.h"

#include "log_capture.h"

static struct limits *make(void)
{
    struct limits *l = NULL;
    assert_int_equal(limits_create(&l), 0);
    assert_non_null(l);
    return l;
}

static void expect_take(struct limiter *lim, int64_t now_ms, bool granted)
{
    int64_t slot = -1;
    if (limiter_take(lim, now_ms, &slot) != granted)
        fail_msg("take at %lld was %s", (long long)now_ms, granted ? "refused" : "granted");
}

static size_t count_lines(const char *log, const char *needle)
{
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_create_get_put(void **state)
{
    (void)state;
    limits_destroy(NULL);
    limiter_put(NULL);
    struct limits *l = make();
    assert_null(limits_get(l, "kill", 0, 1000));
    assert_null(limits_get(l, "kill", LIMIT_MAX_COUNT + 1, 1000));
    assert_null(limits_get(l, "kill", 1, 0));
    assert_null(limits_get(l, "a-name-longer-than-sixty-three-characters-is-not-a-playbook-name-x", 1, 1000));
    struct limiter *a = limits_get(l, "kill", 2, 1000);
    assert_non_null(a);
    limiter_put(a);
    limits_destroy(l);
}

static void test_sliding_window(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", 3, 1000);
    expect_take(lim, 0, true);
    expect_take(lim, 100, true);
    expect_take(lim, 200, true);
    expect_take(lim, 300, false);
    expect_take(lim, 999, false);
    assert_int_equal(limiter_taken(lim, 999), 3);
    expect_take(lim, 1000, true); /* the slot of 0 left the window (0, 1000] */
    expect_take(lim, 1050, false);
    expect_take(lim, 1100, true);
    expect_take(lim, 1199, false);
    assert_int_equal(limiter_taken(lim, 1199), 3);
    assert_int_equal(limiter_refused(lim), 4);
    assert_int_equal(limiter_taken(lim, 100000), 0);
    limiter_put(lim);
    limits_destroy(l);
}

/* 10 per minute, all taken at the end of one minute: a fixed window would allow 10 more at the next
 * minute's start; the sliding window allows none until the first of them is a minute old. */
static void test_no_burst_at_a_boundary(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", 10, 60000);
    for (int i = 0; i < 10; i++)
        expect_take(lim, 59990 + i, true);
    expect_take(lim, 60000, false);
    expect_take(lim, 60001, false);
    expect_take(lim, 119989, false);
    expect_take(lim, 119990, true);
    expect_take(lim, 119990, false);
    expect_take(lim, 119991, true);
    limiter_put(lim);
    limits_destroy(l);
}

static void test_release(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", 3, 1000);
    int64_t s0, s1, s2;
    assert_true(limiter_take(lim, 0, &s0));
    assert_true(limiter_take(lim, 10, &s1));
    assert_true(limiter_take(lim, 20, &s2));
    assert_int_equal(s1, 10);
    expect_take(lim, 30, false);
    limiter_release(lim, s1); /* the action failed: its slot is free again */
    assert_int_equal(limiter_taken(lim, 30), 2);
    limiter_release(lim, 12345); /* no such slot: nothing changes */
    limiter_release(lim, 15);
    assert_int_equal(limiter_taken(lim, 30), 2);
    expect_take(lim, 40, true);
    expect_take(lim, 50, false);
    assert_int_equal(limiter_taken(lim, 1000), 2); /* 0 left; 20 and 40 remain */
    assert_int_equal(limiter_taken(lim, 1020), 1);
    limiter_release(lim, s0); /* expired long ago: nothing to give back */
    assert_int_equal(limiter_taken(lim, 1020), 1);
    limiter_put(lim);
    limits_destroy(l);
}

/* Two threads read the clock, the later one takes the lock first: the slot is kept in order, as the newest. */
static void test_clock_read_out_of_order(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", 2, 1000);
    int64_t a, b;
    assert_true(limiter_take(lim, 100, &a));
    assert_true(limiter_take(lim, 50, &b));
    assert_int_equal(b, 100);
    assert_int_equal(limiter_taken(lim, 1099), 2);
    assert_int_equal(limiter_taken(lim, 1100), 0);
    limiter_put(lim);
    limits_destroy(l);
}

/* A reload: the new config gets the same limiter by name, with its history and the new count and window. */
static void test_shared_by_name(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *old = limits_get(l, "kill", 5, 1000), *global = limits_get(l, LIMIT_GLOBAL, 1, 1000);
    assert_ptr_not_equal(old, global);
    for (int i = 0; i < 5; i++)
        expect_take(old, i, true);
    expect_take(global, 0, true);
    struct limiter *now = limits_get(l, "kill", 3, 2000);
    assert_ptr_equal(now, old);
    assert_int_equal(limiter_taken(now, 10), 5);
    limiter_put(old);              /* the old config is gone */
    expect_take(now, 1500, false); /* within the new, longer window of the slots taken before */
    expect_take(now, 2004, true);
    expect_take(now, 2005, true);
    expect_take(now, 2006, true);
    expect_take(now, 2007, false); /* the new count */
    limiter_put(now);
    struct limiter *fresh = limits_get(l, "kill", 3, 2000); /* its last user put it back: a new one */
    assert_int_equal(limiter_taken(fresh, 2007), 0);
    expect_take(global, 10, false); /* other names were never touched */
    limiter_put(fresh);
    limiter_put(global);
    limits_destroy(l);
}

static void test_logged_once_per_window(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", 2, 60000);
    expect_take(lim, 0, true);
    expect_take(lim, 1, true);
    for (int i = 0; i < 100; i++)
        expect_take(lim, 10 + i, false);
    limits_flush(l, 30000); /* within the window of the first line: nothing */
    limits_flush(l, 60010); /* a window later: the 99 since */
    limits_flush(l, 200000);
    limiter_put(lim);
    limits_destroy(l);

    char *log = captured_log(mem);
    if (count_lines(log, "rate limit reached") != 2 || strstr(log, "playbook=kill") == NULL ||
        strstr(log, "limit=\"2 per 1m\"") == NULL)
        fail_msg("expected two lines for kill, 2 per 1m:\n%s", log);
    char *second = strstr(strstr(log, "rate limit reached") + 1, "rate limit reached");
    if (strstr(log, "count=1\n") == NULL || strstr(second, "count=99") == NULL)
        fail_msg("expected count=1 then count=99:\n%s", log);
    free(log);
}

/* A limiter freed with refusals no line told yet (its playbook left the config) tells them; the global
 * limiter's line says it is the global one; a new storm after a quiet window is told at once. */
static void test_logged_tail_and_global(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    struct limits *l = make();
    struct limiter *lim = limits_get(l, LIMIT_GLOBAL, 1, 1000);
    expect_take(lim, 0, true);
    expect_take(lim, 1, false); /* told at once */
    expect_take(lim, 2, false);
    expect_take(lim, 3, false);
    expect_take(lim, 5000, true);
    expect_take(lim, 5001, false); /* a window after the last line: told at once */
    expect_take(lim, 5002, false);
    limiter_put(lim); /* told as it goes */
    limits_destroy(l);
    char *log = captured_log(mem);
    if (count_lines(log, "rate limit reached") != 3 || count_lines(log, "scope=\"all mutating playbooks\"") != 3 ||
        strstr(log, "playbook=") != NULL)
        fail_msg("expected three global lines:\n%s", log);
    free(log);
}

static void test_large_count(void **state)
{
    (void)state;
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", LIMIT_MAX_COUNT, 60000);
    int64_t slot;
    for (int i = 0; i < LIMIT_MAX_COUNT; i++)
        if (!limiter_take(lim, i / 10, &slot))
            fail_msg("take %d of %d refused", i, LIMIT_MAX_COUNT);
    expect_take(lim, LIMIT_MAX_COUNT / 10, false);
    assert_int_equal(limiter_taken(lim, 60000), LIMIT_MAX_COUNT - 10); /* the ten taken at 0 left */
    expect_take(lim, 60000, true);
    limiter_put(lim);
    limits_destroy(l);
}

static void test_format(void **state)
{
    (void)state;
    char buf[64];
    limits_format(10, 60000, buf, sizeof(buf));
    assert_string_equal(buf, "10 per 1m");
    limits_format(20, 90000, buf, sizeof(buf));
    assert_string_equal(buf, "20 per 90s");
    limits_format(5, 7200000, buf, sizeof(buf));
    assert_string_equal(buf, "5 per 2h");
    limits_format(1, 1500, buf, sizeof(buf));
    assert_string_equal(buf, "1 per 1500ms");
}

#define THREADS 8
#define TAKES 5000
#define COUNT 500

struct racer {
    struct limiter *lim;
    pthread_barrier_t *start;
    atomic_ulong *granted;
};

/* Takes slots all at once with the other threads; every third one it gets, it gives back. */
static void *race(void *arg)
{
    struct racer *r = arg;
    int64_t slot;
    pthread_barrier_wait(r->start);
    for (int i = 0; i < TAKES; i++)
        if (limiter_take(r->lim, 1000 + i / 100, &slot)) {
            if (atomic_fetch_add(r->granted, 1) % 3 == 0)
                limiter_release(r->lim, slot);
        }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    FILE *mem = capture_log();
    struct limits *l = make();
    struct limiter *lim = limits_get(l, "kill", COUNT, 600000);
    pthread_t threads[THREADS];
    struct racer racers[THREADS];
    pthread_barrier_t start;
    atomic_ulong granted = 0;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (unsigned t = 0; t < THREADS; t++) {
        racers[t] = (struct racer){.lim = lim, .start = &start, .granted = &granted};
        assert_int_equal(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&start);
    unsigned long n = atomic_load(&granted), kept = n - (n + 2) / 3, more = 0;
    assert_true(kept <= COUNT); /* never more than COUNT at once */
    assert_int_equal(limiter_taken(lim, 2000), kept);
    assert_int_equal(limiter_refused(lim), THREADS * TAKES - n);
    int64_t slot;
    while (limiter_take(lim, 2000, &slot)) /* a release may have come last: top up */
        more++;
    assert_int_equal(kept + more, COUNT);
    limiter_put(lim);
    limits_destroy(l);
    free(captured_log(mem));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_get_put),
        cmocka_unit_test(test_sliding_window),
        cmocka_unit_test(test_no_burst_at_a_boundary),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_clock_read_out_of_order),
        cmocka_unit_test(test_shared_by_name),
        cmocka_unit_test(test_logged_once_per_window),
        cmocka_unit_test(test_logged_tail_and_global),
        cmocka_unit_test(test_large_count),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
