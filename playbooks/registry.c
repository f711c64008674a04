/* registry.c: every playbook type playbookd knows, one line each. Adding a playbook: a file and a line. */
#include "playbookd/playbook.h"

extern const struct playbook_type playbook_slack, playbook_delete_pod, playbook_taint_node, playbook_isolate_pod,
    playbook_capture_logs, playbook_label_pod, playbook_label_node, playbook_cordon_node, playbook_webhook,
    playbook_teams, playbook_evict_pod;

const struct playbook_type *const playbook_types[] = {
    &playbook_slack,       &playbook_delete_pod,   &playbook_evict_pod, &playbook_taint_node,
    &playbook_isolate_pod, &playbook_capture_logs, &playbook_label_pod, &playbook_label_node,
    &playbook_cordon_node, &playbook_webhook,      &playbook_teams,     NULL,
};
