/* config_check.h: shared by the config unit tests: load a valid config, or expect a config's exact error. */
#ifndef PLAYBOOKD_TEST_CONFIG_CHECK_H
#define PLAYBOOKD_TEST_CONFIG_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "playbookd/config.h"
#include "playbookd/playbook.h"

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

/* Loads yaml, which must be valid (dry_run: as the --dry-run flag). */
static inline struct config *load_config(const char *yaml, bool dry_run)
{
    struct config *cfg = NULL;
    struct error err = {{0}};
    if (config_load_string(&cfg, NAME, yaml, strlen(yaml), dry_run, &err) != 0)
        fail_msg("config_load_string failed: %s\n--- config:\n%s", err.msg, yaml);
    assert_non_null(cfg);
    return cfg;
}

static inline struct config *load_ok(const char *yaml)
{
    return load_config(yaml, false);
}

/* "slack, ..." as the library lists the registered types in messages. */
static inline const char *type_list(void)
{
    static char buf[256];
    size_t n = 0;
    buf[0] = 0;
    for (const struct playbook_type *const *t = playbook_types; *t != NULL && n < sizeof(buf); t++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? ", " : "", (*t)->name);
    return buf;
}

#endif
