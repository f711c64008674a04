/* test_workers.c: unit tests for workers_quiet, which tells the daemon that a burst is over, and for
 * workers_try_submit, which says at once that the queue is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>

#include "playbookd/workers.h"

/* An item that runs until released, so that the test sees it running. */
struct held {
    struct work work;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started, released;
};

static void held_run(struct work *w)
{
    struct held *h = (struct held *)w;
    pthread_mutex_lock(&h->lock);
    h->started = true;
    pthread_cond_broadcast(&h->cond);
    while (!h->released)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

static void held_drop(struct work *w)
{
    (void)w;
    fail_msg("the item was dropped");
}

static void wait_flag(struct held *h, const bool *flag)
{
    pthread_mutex_lock(&h->lock);
    while (!*flag)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
}

static void test_quiet_after_a_burst(void **state)
{
    (void)state;
    struct workers *p;
    struct error err;
    unsigned long ended = 0;
    struct held h = {.work = {.run = held_run, .drop = held_drop}};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(workers_create(&p, 2, 8, &err), 0);
    assert_true(workers_quiet(p, &ended)); /* nothing ever ran */

    assert_int_equal(workers_submit(p, &h.work), 0);
    wait_flag(&h, &h.started);
    assert_false(workers_quiet(p, &ended)); /* running */
    pthread_mutex_lock(&h.lock);
    h.released = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    workers_finish(p, -1); /* waits for the item to end */

    assert_false(workers_quiet(p, &ended)); /* an item ended since the last call */
    assert_int_equal(ended, 1);
    assert_true(workers_quiet(p, &ended)); /* and none since */
    workers_destroy(p);
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.lock);
}

static void release(struct held *h)
{
    pthread_mutex_lock(&h->lock);
    h->released = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void test_try_submit_answers_full_without_waiting(void **state)
{
    (void)state;
    struct workers *p;
    struct error err;
    struct held h[3];
    for (int i = 0; i < 3; i++) {
        h[i] = (struct held){.work = {.run = held_run, .drop = held_drop}};
        pthread_mutex_init(&h[i].lock, NULL);
        pthread_cond_init(&h[i].cond, NULL);
    }
    assert_int_equal(workers_create(&p, 1, 1, &err), 0);
    assert_int_equal(workers_try_submit(p, &h[0].work), 0);
    wait_flag(&h[0], &h[0].started);                        /* the one worker is busy */
    assert_int_equal(workers_try_submit(p, &h[1].work), 0); /* the queue's one place */
    assert_int_equal(workers_try_submit(p, &h[2].work), 1); /* full: said at once, h[2] untouched */
    release(&h[0]);
    wait_flag(&h[1], &h[1].started);
    assert_int_equal(workers_try_submit(p, &h[2].work), 0); /* room again */
    release(&h[1]);
    release(&h[2]);
    workers_finish(p, -1);
    assert_int_equal(workers_try_submit(p, &h[0].work), -1); /* stopping */
    workers_destroy(p);
    for (int i = 0; i < 3; i++) {
        pthread_cond_destroy(&h[i].cond);
        pthread_mutex_destroy(&h[i].lock);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_after_a_burst),
        cmocka_unit_test(test_try_submit_answers_full_without_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
