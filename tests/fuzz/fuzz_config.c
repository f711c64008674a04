/* fuzz_config.c: libFuzzer target for config_load_string on arbitrary YAML; what it accepts must be coherent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "playbookd/config.h"
#include "playbookd/playbook.h"
#include "playbookd/subject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    struct error err;
    if (config_load_string(&cfg, "fuzz.yaml", (const char *)data, size, false, &err) != 0) {
        if (cfg != NULL || memchr(err.msg, 0, sizeof(err.msg)) == NULL)
            abort();
        return 0;
    }
    if (cfg->n_topics == 0 || cfg->nats.servers.n == 0 || cfg->n_playbooks > CONFIG_MAX_PLAYBOOKS)
        abort();
    for (size_t i = 0; i < cfg->n_topics; i++) {
        const struct topic *t = &cfg->topics[i];
        if (subject_pattern_check(t->pattern, NULL) != 0 || t->n_playbooks == 0)
            abort();
        for (size_t j = 0; j < t->n_playbooks; j++)
            if (t->playbooks[j] >= cfg->n_playbooks)
                abort();
    }
    for (size_t i = 0; i < cfg->n_playbooks; i++)
        if (cfg->playbooks[i]->name == NULL || cfg->playbooks[i]->type == NULL)
            abort();
    config_destroy(cfg);
    return 0;
}
