/*
 * rbac.h: least privilege, shown. The ClusterRole that exactly the playbooks a config uses need: each
 * playbook type declares its rules (struct rbac_rule in playbook.h), and every config whose playbooks call
 * the Kubernetes API also creates events.k8s.io Events. `playbookd --print-rbac -c FILE` prints it, and
 * manifests/rbac.yaml is that output for the shipped ConfigMap (tests/manifests checks it).
 */
#ifndef PLAYBOOKD_RBAC_H
#define PLAYBOOKD_RBAC_H

#include <stdio.h>

#include "playbookd/config.h"
#include "playbookd/error.h"

#define RBAC_ROLE_NAME "playbookd"
/* The service account a Role is bound to, as manifests/rbac.yaml names it. */
#define RBAC_SERVICE_ACCOUNT "playbookd"
#define RBAC_SERVICE_ACCOUNT_NAMESPACE "playbookd"

/*
 * Writes the ClusterRole, YAML as manifests/rbac.yaml has it, for the playbooks that cfg's topics use (a
 * playbook defined but named by no topic never runs and adds nothing; a comment lists it). The rules are
 * merged and de-duplicated: one per resource, sorted by API group then resource, verbs in the order of
 * RBAC's documentation (get, list, watch, create, update, patch, delete). When a playbook has expire_after,
 * the expiry sweeper's rules (expiry.h: nodes and pods get, list, patch) are added. Rules a playbook needs in one
 * namespace only (capture-logs: configmaps create in its evidence_namespace) are not in the ClusterRole:
 * after it come, per such namespace in name order, a Role there and a RoleBinding to playbookd's service
 * account, each after a "---" line. 0, or -1 with err set.
 */
int rbac_print(FILE *out, const struct config *cfg, struct error *err);

#endif
