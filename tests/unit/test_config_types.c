/* test_config_types.c: config tests with stand-in playbook types: types used directly, sharing, init failures, limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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

static struct config *load_ok(const char *yaml, bool dry_run)
{
    struct config *cfg = NULL;
    struct error err = {{0}};
    if (config_load_string(&cfg, NAME, yaml, strlen(yaml), dry_run, &err) != 0)
        fail_msg("config_load_string failed: %s\n--- config:\n%s", err.msg, yaml);
    return cfg;
}

static long level_of(const struct playbook *pb)
{
    return ((const struct noop *)pb->ctx)->level;
}

static void test_type_used_directly_is_shared(void **state)
{
    (void)state;
    need_stand_ins();
    struct config *cfg = load_ok("topics:\n"
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
    struct config *cfg = load_ok("playbooks:\n"
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
    struct config *cfg = load_ok("playbooks:\n"
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
            struct config *cfg = load_ok(yaml, false);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_type_used_directly_is_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_and_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_shadows_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_playbooks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
