/* config_check.h: shared by the config unit tests: load a config and expect its exact error. */
#ifndef PLAYBOOKD_TEST_CONFIG_CHECK_H
#define PLAYBOOKD_TEST_CONFIG_CHECK_H

#include <stdint.h>
#include <string.h>

#include "playbookd/config.h"

#define NAME "test.yaml"

/* Loads yaml, expects failure with exactly `expected`, and that *out is NULL. */
static void check_error(const char *yaml, const char *expected)
{
    struct config *cfg = (struct config *)(uintptr_t)1;
    struct error err = {{0}};
    if (config_load_string(&cfg, NAME, yaml, strlen(yaml), false, &err) != -1) {
        config_destroy(cfg);
        fail_msg("accepted:\n%s", yaml);
    }
    assert_null(cfg);
    if (strcmp(err.msg, expected) != 0)
        fail_msg("--- config:\n%s--- expected: %s\n--- got:      %s", yaml, expected, err.msg);
}

#endif
