/*
 * test_config_types.c: config tests with stand-in playbook types (types used directly, sharing, init failures,
 * limits) and the duration and size parameter types.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/config.h"
#include "playbookd/playbook.h"

#include "config_check.h"

/*
 * This file replaces the registry (playbooks/registry.c) with two stand-in types, so the config's handling of
 * types can be tested without the network. The definition is weak: the linker then leaves registry.o in the
 * archive; should registry.o ever be linked in for another symbol, its definition wins and the tests skip.
 */
static int inits, destroys;

struct noop {
    long level;
};

static const struct param_spec noop_params[] = {
    {.name = "level", .type = PARAM_INT, .def = "3", .offset = offsetof(struct noop, level), .min = 0, .max = 9},
    {0},
};

static int noop_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    inits++;
    struct noop *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return error_set(err, "out of memory");
    pb->ctx = n;
    return params_load(noop_params, pb->type->name, params, n, err);
}

static enum outcome noop_run(struct playbook *pb, const struct alert *a, struct action_result *res)
{
    (void)pb, (void)a, (void)res;
    return OUTCOME_OK;
}

static void noop_destroy(struct playbook *pb)
{
    destroys++;
    free(pb->ctx);
    pb->ctx = NULL;
}

static int refuse_init(struct playbook *pb, const struct config_node *params, struct error *err)
{
    (void)pb, (void)params;
    inits++;
    return error_set(err, "refused by the test");
}

static const struct playbook_type test_noop = {
    .name = "test-noop", .init = noop_init, .run = noop_run, .destroy = noop_destroy};
static const struct playbook_type test_refuse = {
    .name = "test-refuse", .init = refuse_init, .run = noop_run, .destroy = noop_destroy};

__attribute__((weak)) const struct playbook_type *const playbook_types[] = {&test_noop, &test_refuse, NULL};

static int setup(void **state)
{
    (void)state;
    inits = destroys = 0;
    return 0;
}

/* Every instance created was destroyed exactly once. */
static int teardown(void **state)
{
    (void)state;
    if (inits != destroys) {
        print_error("%d playbook inits but %d destroys\n", inits, destroys);
        return -1;
    }
    return 0;
}

static void need_stand_ins(void)
{
    if (playbook_type_find("test-noop") == NULL) {
        print_message("note: the real registry was linked in; stand-in types unavailable\n");
        skip();
    }
}

static long level_of(const struct playbook *pb)
{
    return ((const struct noop *)pb->ctx)->level;
}

static void test_type_used_directly_is_shared(void **state)
{
    (void)state;
    need_stand_ins();
    struct config *cfg = load_config("topics:\n"
                                     "  \"falco.*.*\": [test-noop]\n"
                                     "  falco.notice.terminal_shell_in_container: [test-noop]\n"
                                     "  falco.>: test-noop\n",
                                     false);
    assert_int_equal(cfg->n_playbooks, 1);
    assert_int_equal(inits, 1);
    assert_string_equal(cfg->playbooks[0]->name, "test-noop");
    assert_ptr_equal(cfg->playbooks[0]->type, &test_noop);
    assert_int_equal(level_of(cfg->playbooks[0]), 3); /* its defaults */
    assert_false(cfg->playbooks[0]->dry_run);
    assert_int_equal(cfg->n_topics, 3);
    for (size_t i = 0; i < cfg->n_topics; i++) {
        assert_int_equal(cfg->topics[i].n_playbooks, 1);
        assert_int_equal(cfg->topics[i].playbooks[0], 0);
    }
    config_destroy(cfg);
    assert_int_equal(destroys, 1);
}

static void test_named_and_direct(void **state)
{
    (void)state;
    need_stand_ins();
    struct config *cfg = load_config("playbooks:\n"
                                     "  quiet: {type: test-noop, level: 5}\n"
                                     "  loud: {type: test-noop, level: 9}\n"
                                     "topics:\n"
                                     "  a: [quiet, test-noop, loud]\n"
                                     "  b: [test-noop, quiet]\n",
                                     true);
    assert_int_equal(cfg->n_playbooks, 3);
    assert_string_equal(cfg->playbooks[0]->name, "quiet");
    assert_int_equal(level_of(cfg->playbooks[0]), 5);
    assert_string_equal(cfg->playbooks[1]->name, "loud");
    assert_int_equal(level_of(cfg->playbooks[1]), 9);
    assert_string_equal(cfg->playbooks[2]->name, "test-noop");
    assert_int_equal(level_of(cfg->playbooks[2]), 3);
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        assert_true(cfg->playbooks[i]->dry_run); /* the argument reaches direct instances too */
    assert_int_equal(cfg->topics[0].n_playbooks, 3);
    assert_int_equal(cfg->topics[0].playbooks[0], 0);
    assert_int_equal(cfg->topics[0].playbooks[1], 2);
    assert_int_equal(cfg->topics[0].playbooks[2], 1);
    assert_int_equal(cfg->topics[1].playbooks[0], 2);
    assert_int_equal(cfg->topics[1].playbooks[1], 0);
    config_destroy(cfg);
}

static void test_name_shadows_type(void **state)
{
    (void)state;
    need_stand_ins();
    /* A playbook named like a type is the one a topic gets: no second instance with defaults. */
    struct config *cfg = load_config("playbooks:\n"
                                     "  test-noop: {type: test-noop, level: 0}\n"
                                     "topics:\n"
                                     "  a: [test-noop]\n",
                                     false);
    assert_int_equal(cfg->n_playbooks, 1);
    assert_int_equal(level_of(cfg->playbooks[0]), 0);
    config_destroy(cfg);
}

static void test_init_failures(void **state)
{
    (void)state;
    need_stand_ins();
    check_error("topics:\n  a: [test-noop, test-refuse]\n", NAME
                ":2:18: type test-refuse used with its defaults: refused by the test; define it under 'playbooks'");
    /* A named playbook's init failure carries the type's reason (where is up to the type). */
    struct config *cfg = (struct config *)(uintptr_t)1;
    struct error err = {{0}};
    const char *named = "playbooks:\n  r: {type: test-refuse}\ntopics:\n  a: [r]\n";
    assert_int_equal(config_load_string(&cfg, NAME, named, strlen(named), false, &err), -1);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "refused by the test"));
    check_error("playbooks:\n  n: {type: test-noop, level: 10}\ntopics:\n  a: [n]\n",
                NAME ":2:31: key 'level': must be between 0 and 9");
    check_error("playbooks:\n  n: {type: test-noop, volume: 1}\ntopics:\n  a: [n]\n",
                NAME ":2:24: key 'volume': unknown parameter for playbook type test-noop (valid: level)");
    check_error("topics:\n  a: [test-noop]\n  b: [nobody]\n", NAME
                ":3:7: 'nobody' is neither a playbook defined under 'playbooks' nor a type (test-noop, test-refuse)");
    check_error("playbooks:\n  n: {type: nope}\n", NAME ":2:13: key 'type': unknown playbook type (valid: test-noop, "
                                                        "test-refuse)");
}

static void test_too_many_playbooks(void **state)
{
    (void)state;
    need_stand_ins();
    size_t cap = 64 * (CONFIG_MAX_PLAYBOOKS + 2) + 64;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    for (int count = CONFIG_MAX_PLAYBOOKS; count <= CONFIG_MAX_PLAYBOOKS + 1; count++) {
        size_t n = (size_t)snprintf(yaml, cap, "playbooks:\n");
        for (int i = 0; i < count; i++)
            n += (size_t)snprintf(yaml + n, cap - n, "  p%d: {type: test-noop}\n", i);
        snprintf(yaml + n, cap - n, "topics:\n  a: [p0]\n");
        if (count == CONFIG_MAX_PLAYBOOKS) {
            struct config *cfg = load_config(yaml, false);
            assert_int_equal(cfg->n_playbooks, CONFIG_MAX_PLAYBOOKS);
            config_destroy(cfg);
        } else {
            char expected[128];
            snprintf(expected, sizeof(expected), NAME ":%d:9: key 'p%d': too many playbooks (limit %d)", count + 1,
                     count - 1, CONFIG_MAX_PLAYBOOKS);
            check_error(yaml, expected);
        }
    }
    free(yaml);

    /* A type used directly cannot be the 257th either. */
    yaml = malloc(cap);
    assert_non_null(yaml);
    size_t n = (size_t)snprintf(yaml, cap, "playbooks:\n");
    for (int i = 0; i < CONFIG_MAX_PLAYBOOKS; i++)
        n += (size_t)snprintf(yaml + n, cap - n, "  p%d: {type: test-noop}\n", i);
    snprintf(yaml + n, cap - n, "topics:\n  a: [p0, test-noop]\n");
    char expected[128];
    snprintf(expected, sizeof(expected), NAME ":%d:11: too many playbooks (limit %d)", CONFIG_MAX_PLAYBOOKS + 3,
             CONFIG_MAX_PLAYBOOKS);
    check_error(yaml, expected);
    free(yaml);
}

/* Durations and sizes, loaded by a table as a playbook or a section would. */
struct measures {
    long timeout_ms, quiet_ms, buffer, chunk;
};

static const struct param_spec measure_params[] = {
    {.name = "timeout",
     .type = PARAM_DURATION,
     .def = "30s",
     .offset = offsetof(struct measures, timeout_ms),
     .min = 100,
     .max = 600000},
    {.name = "quiet",
     .type = PARAM_DURATION,
     .def = "0s",
     .offset = offsetof(struct measures, quiet_ms),
     .min = 0,
     .max = LONG_MAX},
    {.name = "buffer",
     .type = PARAM_SIZE,
     .def = "16MiB",
     .offset = offsetof(struct measures, buffer),
     .min = 1024,
     .max = 1L << 30},
    {.name = "chunk",
     .type = PARAM_SIZE,
     .def = "1KiB",
     .offset = offsetof(struct measures, chunk),
     .min = 0,
     .max = 1500},
    {0},
};

/* Loads yaml (NULL: no map, all defaults) into m by measure_params; returns params_load's result. */
static int load_measures(const char *yaml, struct measures *m, struct error *err)
{
    struct config_node *root = NULL;
    if (yaml != NULL && config_tree_read(&root, NAME, yaml, strlen(yaml), false, err) != 0)
        fail_msg("config_tree_read failed: %s", err->msg);
    int rc = params_load(measure_params, NULL, root, m, err);
    config_tree_free(root);
    return rc;
}

static void check_measure_error(const char *yaml, const char *expected)
{
    struct measures m = {0};
    struct error err = {{0}};
    if (load_measures(yaml, &m, &err) != -1)
        fail_msg("accepted:\n%s", yaml);
    if (strcmp(err.msg, expected) != 0)
        fail_msg("--- yaml:\n%s--- expected: %s\n--- got:      %s", yaml, expected, err.msg);
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long ms;
    } good[] = {
        {"0s", 0},
        {"0ms", 0},
        {"500ms", 500},
        {"30s", 30000},
        {"1m", 60000},
        {"24h", 86400000},
        {"1h30m", 5400000},
        {"1h0m5s7ms", 3605007},
        {"90m", 5400000},
        {"007s", 7000},
        {"2562047788015h", 2562047788015L * 3600000L},
        {"9223372036854775s", 9223372036854775000L},
        {"9223372036854775807ms", LONG_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        long ms = -1;
        if (config_parse_duration(good[i].text, &ms) != 0 || ms != good[i].ms)
            fail_msg("'%s': got %ld, expected %ld", good[i].text, ms, good[i].ms);
    }
    static const char *const bad[] = {
        "",     "0",  "30",   "s",     "ms",   "-1s",   "+1s",  "1.5s", " 1s", "1s ", "1 s",     "1S",
        "1sec", "1d", "1m30", "30m1h", "1s1s", "1ms1s", "1h1h", "1hs",  "1us", "s1",  "1_000ms", "0x10s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long ms = 42;
        if (config_parse_duration(bad[i], &ms) != -1)
            fail_msg("'%s' was not rejected as malformed", bad[i]);
        assert_int_equal(ms, 42); /* untouched */
    }
    static const char *const too_big[] = {"9223372036854775808ms", "2562047788016h", "2562047788015h13m",
                                          "99999999999999999999999s", "9223372036854776s"};
    for (size_t i = 0; i < sizeof(too_big) / sizeof(too_big[0]); i++) {
        long ms = 42;
        if (config_parse_duration(too_big[i], &ms) != -2)
            fail_msg("'%s' was not rejected as too large", too_big[i]);
        assert_int_equal(ms, 42);
    }
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long bytes;
    } good[] = {
        {"0", 0},
        {"0B", 0},
        {"100B", 100},
        {"4096", 4096},
        {"512KiB", 512L << 10},
        {"16MiB", 16L << 20},
        {"1GiB", 1L << 30},
        {"8589934591GiB", 8589934591L << 30},
        {"9223372036854775807", LONG_MAX},
        {"9223372036854775807B", LONG_MAX},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        long bytes = -1;
        if (config_parse_size(good[i].text, &bytes) != 0 || bytes != good[i].bytes)
            fail_msg("'%s': got %ld, expected %ld", good[i].text, bytes, good[i].bytes);
    }
    static const char *const bad[] = {"",      "B",     "KiB",  "-1",     "+1",   "1.5MiB", " 1", "1 ",
                                      "1 MiB", "1KB",   "1MB",  "1GB",    "1kib", "1mib",   "1K", "1M",
                                      "1Ki",   "1MiBB", "1TiB", "1KiB1B", "1b",   "0x10",   "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long bytes = 42;
        if (config_parse_size(bad[i], &bytes) != -1)
            fail_msg("'%s' was not rejected as malformed", bad[i]);
        assert_int_equal(bytes, 42);
    }
    static const char *const too_big[] = {"9223372036854775808", "8589934592GiB", "9007199254740992KiB",
                                          "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(too_big) / sizeof(too_big[0]); i++) {
        long bytes = 42;
        if (config_parse_size(too_big[i], &bytes) != -2)
            fail_msg("'%s' was not rejected as too large", too_big[i]);
        assert_int_equal(bytes, 42);
    }
}

static void test_measure_defaults_and_values(void **state)
{
    (void)state;
    struct measures m = {0};
    struct error err = {{0}};
    assert_int_equal(load_measures(NULL, &m, &err), 0); /* defaults are text, parsed like values */
    assert_int_equal(m.timeout_ms, 30000);
    assert_int_equal(m.quiet_ms, 0);
    assert_int_equal(m.buffer, 16L << 20);
    assert_int_equal(m.chunk, 1024);

    memset(&m, 0, sizeof(m));
    assert_int_equal(load_measures("timeout: 1h\nquiet: 1h30m\nbuffer: 512KiB\nchunk: 1500B\n", &m, &err), -1);
    assert_string_equal(err.msg, NAME ":1:10: key 'timeout': must be between 100ms and 10m");
    assert_int_equal(load_measures("timeout: 10m\nquiet: 1h30m\nbuffer: 1GiB\nchunk: 1500B\n", &m, &err), 0);
    assert_int_equal(m.timeout_ms, 600000);
    assert_int_equal(m.quiet_ms, 5400000);
    assert_int_equal(m.buffer, 1L << 30);
    assert_int_equal(m.chunk, 1500);
    assert_int_equal(load_measures("timeout: 100ms\nquiet: 0s\nbuffer: 1024\nchunk: 0\n", &m, &err), 0);
    assert_int_equal(m.timeout_ms, 100);
    assert_int_equal(m.quiet_ms, 0);
    assert_int_equal(m.buffer, 1024);
    assert_int_equal(m.chunk, 0);
}

static void test_measure_errors(void **state)
{
    (void)state;
    const char *dur = "expected a duration such as 500ms, 30s, 1m, 24h or 1h30m";
    const char *size = "expected a size such as 100B, 512KiB, 16MiB, 1GiB or a number of bytes (binary units only: "
                       "KB, MB and GB are not accepted)";
    char expected[512];

    snprintf(expected, sizeof(expected), NAME ":1:10: key 'timeout': %s", dur);
    check_measure_error("timeout: 30\nchunk: 1\n", expected);
    check_measure_error("timeout: 1.5s\nchunk: 1\n", expected);
    check_measure_error("timeout: \"\"\nchunk: 1\n", expected);
    snprintf(expected, sizeof(expected), NAME ":2:10: key 'quiet': %s", dur);
    check_measure_error("chunk: 1\nquiet:   30m1h\n", expected);
    snprintf(expected, sizeof(expected), NAME ":1:9: key 'buffer': %s", size);
    check_measure_error("buffer: 16MB\nchunk: 1\n", expected);
    check_measure_error("buffer: 16 MiB\nchunk: 1\n", expected);
    snprintf(expected, sizeof(expected), NAME ":3:12: key 'buffer': %s", size);
    check_measure_error("chunk: 1\ntimeout: 1s\nbuffer:    -1\n", expected);

    /* Bounds, rendered with units; a value too large for a long is out of them too. */
    check_measure_error("timeout: 99ms\nchunk: 1\n", NAME ":1:10: key 'timeout': must be between 100ms and 10m");
    check_measure_error("timeout: 10m1ms\nchunk: 1\n", NAME ":1:10: key 'timeout': must be between 100ms and 10m");
    check_measure_error("timeout: 9999999999999999999999h\nchunk: 1\n",
                        NAME ":1:10: key 'timeout': must be between 100ms and 10m");
    check_measure_error("quiet: 2562047788016h\nchunk: 1\n",
                        NAME ":1:8: key 'quiet': must be between 0ms and 2562047788015h12m55s807ms");
    check_measure_error("buffer: 1023B\nchunk: 1\n", NAME ":1:9: key 'buffer': must be between 1KiB and 1GiB");
    check_measure_error("buffer: 1025MiB\nchunk: 1\n", NAME ":1:9: key 'buffer': must be between 1KiB and 1GiB");
    check_measure_error("buffer: 8589934592GiB\nchunk: 1\n", NAME ":1:9: key 'buffer': must be between 1KiB and 1GiB");
    check_measure_error("chunk: 1501\n", NAME ":1:8: key 'chunk': must be between 0B and 1500B");
    check_measure_error("chunk: [1s]\n", NAME ":1:8: key 'chunk': expected a single value, not a list");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_type_used_directly_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_and_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_shadows_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_playbooks, setup, teardown),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_measure_defaults_and_values),
        cmocka_unit_test(test_measure_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
