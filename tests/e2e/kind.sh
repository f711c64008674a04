#!/usr/bin/env bash
# tests/e2e/kind.sh: end to end on a throwaway kind cluster, in dry run. Builds the image, applies
# manifests/ (dry_run: true from the ConfigMap), starts a victim pod, publishes the alert Falco would
# send for a shell in it (through falco-nats, as Falco's sidecar would; there is no Falco in the
# cluster), then asserts that playbookd logged playbook kill with outcome dry-run for that pod and that
# the pod is still Running. Needs a Docker engine, kind and kubectl; without them it says so, tests
# nothing and exits 0.
#   bash tests/e2e/kind.sh                 # KEEP_CLUSTER=1 keeps the cluster for a look afterwards
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image=playbookd:dev
victim_image=${VICTIM_IMAGE:-busybox:1.36}
nats_image=nats:2.10-alpine
victim_ns=e2e-victim
wait_s=60

say() { printf 'kind e2e: %s\n' "$*"; }

# --- prerequisites: skip, saying so, when there is nothing to run on --------------------------------
missing=()
if ! command -v docker >/dev/null 2>&1; then
    missing+=("docker")
elif ! docker info >/dev/null 2>&1; then
    missing+=("a Docker engine (docker info failed)")
fi
command -v kind >/dev/null 2>&1 || missing+=("kind")
command -v kubectl >/dev/null 2>&1 || missing+=("kubectl")
if ((${#missing[@]})); then
    list=$(printf '%s, ' "${missing[@]}")
    say "skipped: ${list%, } missing; nothing was tested"
    exit 0
fi

# --- a cluster of our own, removed on exit ---------------------------------------------------------
cluster=playbookd-e2e
if kind get clusters 2>/dev/null | grep -x "$cluster" >/dev/null; then
    cluster="playbookd-e2e-$$-$(date +%s)"
fi
workdir=$(mktemp -d)
export KUBECONFIG="$workdir/kubeconfig"   # leave the user's kubeconfig alone
created=0

diagnostics() {
    say "diagnostics follow"
    kubectl get pods -A -o wide || true
    kubectl -n playbookd describe pods || true
    kubectl -n playbookd logs -l app.kubernetes.io/name=playbookd --tail=200 --prefix || true
    kubectl -n playbookd logs -l app=nats --tail=50 --prefix || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 40 || true
}

cleanup() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        say "FAILED (exit $rc)"
        ((created)) && diagnostics
    fi
    if ((created)); then
        if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
            say "keeping cluster $cluster (KUBECONFIG=$KUBECONFIG); delete it with: kind delete cluster --name $cluster"
        else
            kind delete cluster --name "$cluster" >/dev/null 2>&1 || say "could not delete cluster $cluster"
            rm -rf "$workdir"
        fi
    else
        rm -rf "$workdir"
    fi
    exit "$rc"
}
trap cleanup EXIT

say "creating cluster $cluster"
created=1
kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 180s

say "building $image"
docker build -t "$image" "$repo"
kind load docker-image "$image" --name "$cluster"
# Preload the other images when the host can pull them; otherwise the node pulls them itself.
for img in "$nats_image" "$victim_image"; do
    if docker image inspect "$img" >/dev/null 2>&1 || docker pull -q "$img" >/dev/null 2>&1; then
        kind load docker-image "$img" --name "$cluster"
    fi
done

# --- playbookd, its NATS server and the Slack secret ------------------------------------------------
kubectl create namespace playbookd
kubectl -n playbookd create secret generic playbookd-slack \
    --from-literal=webhook-url=https://hooks.slack.invalid/services/T000/B000/XXXX
# The NATS identities (manifests/nats.yaml), as the README creates them.
falco_pw="pw$(openssl rand -hex 24)"
kubectl -n playbookd create secret generic nats-auth \
    --from-literal=falco-password="$falco_pw" --from-literal=playbookd-password="pw$(openssl rand -hex 24)"
# The publisher runs in the Falco namespace: NetworkPolicy nats lets only it and playbookd connect.
kubectl create namespace falco
kubectl apply -k "$repo/manifests"
kubectl -n playbookd rollout status deployment/nats --timeout=180s
kubectl -n playbookd rollout status deployment/playbookd --timeout=180s

# --- the victim --------------------------------------------------------------------------------------
kubectl create namespace "$victim_ns"
kubectl -n "$victim_ns" run victim --image="$victim_image" --image-pull-policy=IfNotPresent \
    --restart=Never --command -- sleep 3600
kubectl -n "$victim_ns" wait --for=condition=Ready pod/victim --timeout=120s
uid=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.metadata.uid}')
node=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.spec.nodeName}')
if [[ -z $uid || -z $node ]]; then
    say "victim pod has no uid or node"
    exit 1
fi

# The attack: a shell in the victim. No Falco runs in this cluster, so the alert Falco would emit for it
# is published below by hand, through falco-nats, exactly as Falco's sidecar would.
kubectl -n "$victim_ns" exec victim -- sh -c 'id; cat /etc/hostname' >/dev/null

# The alert Falco emits for a shell in that pod, as one JSON line.
alert=$(printf '{"rule":"Terminal shell in container","priority":"Notice","source":"syscall",%s}' \
    "$(printf '"time":"%s","hostname":"%s","output":"A shell was spawned in a container (e2e)","output_fields":{"container.id":"0123456789ab","container.name":"victim","k8s.ns.name":"%s","k8s.pod.name":"victim","k8s.pod.uid":"%s","proc.cmdline":"sh","user.name":"root"},"tags":["container","shell","mitre_execution"]' \
        "$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)" "$node" "$victim_ns" "$uid")")

publish() {
    # falco-nats reads alerts from stdin with -f - and publishes each on falco.<priority>.<slug>.
    # The pod runs in the falco namespace, as Falco's sidecar would, with the falco identity.
    printf '%s\n' "$alert" | kubectl -n falco run "alert-pub-$1" -i --rm --quiet --restart=Never \
        --image="$image" --image-pull-policy=IfNotPresent --env=NATS_USER=falco --env=NATS_PASSWORD="$falco_pw" \
        --command -- falco-nats -s nats://nats.playbookd.svc:4222 -f -
}

# One action log line, in json or text form, for playbook $2 with outcome $3 on the victim, in the
# logs $1. (No grep -q at the end of a pipeline: under pipefail an early exit can fail the pipeline.)
has_action() {
    local logs=$1 playbook=$2 outcome=$3 target="pod $victim_ns/victim"
    grep -F '"msg":"action"' <<<"$logs" | grep -F "\"playbook\":\"$playbook\"" |
        grep -F "\"outcome\":\"$outcome\"" | grep -F "\"target\":\"$target\"" >/dev/null && return 0
    grep -E '(^| )action( |$)' <<<"$logs" | grep -F "playbook=$playbook " |
        grep -F "outcome=$outcome" | grep -F "target=\"$target\"" >/dev/null
}

playbookd_logs() {
    kubectl -n playbookd logs -l app.kubernetes.io/name=playbookd --tail=-1 --max-log-requests=10 2>/dev/null || true
}

# Core NATS keeps nothing for late subscribers: publish again every 20 s until the deadline.
say "publishing the alert for pod $victim_ns/victim (uid $uid) on node $node"
deadline=$((SECONDS + wait_s))
found=0
attempt=0
last_publish=0
logs=
while ((SECONDS < deadline)); do
    if ((attempt == 0 || (SECONDS - last_publish) >= 20)); then
        attempt=$((attempt + 1))
        publish "$attempt"
        last_publish=$SECONDS
    fi
    logs=$(playbookd_logs)
    if has_action "$logs" kill dry-run; then
        found=1
        break
    fi
    sleep 2
done
if ((!found)); then
    say "no 'action' line for playbook kill with outcome dry-run on pod $victim_ns/victim within ${wait_s}s"
    grep -F 'action' <<<"$logs" | tail -n 20 || true
    exit 1
fi
say "playbookd logged: kill -> dry-run on pod $victim_ns/victim"
for pb in cut-off fence notify; do
    line=$(grep -F "\"playbook\":\"$pb\"" <<<"$logs" | tail -n 1 || true)
    say "  (for information) $pb: ${line:-no line}"
done

# --- dry run persisted nothing -------------------------------------------------------------------------
phase=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.status.phase}')
now_uid=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.metadata.uid}')
deleting=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.metadata.deletionTimestamp}')
if [[ $phase != Running || $now_uid != "$uid" || -n $deleting ]]; then
    say "victim changed: phase=$phase uid=$now_uid (was $uid) deletionTimestamp=${deleting:-none}"
    exit 1
fi
taints=$(kubectl get node "$node" -o jsonpath='{.spec.taints[*].key}')
if grep -qw 'falco/alert' <<<"$taints"; then
    say "node $node was tainted falco/alert in dry run"
    exit 1
fi
if kubectl -n "$victim_ns" get networkpolicy playbookd-isolate >/dev/null 2>&1; then
    say "NetworkPolicy playbookd-isolate was created in dry run"
    exit 1
fi
isolated=$(kubectl -n "$victim_ns" get pod victim -o jsonpath='{.metadata.labels.playbookd\.io/isolated}')
if [[ -n $isolated ]]; then
    say "victim was labelled playbookd.io/isolated=$isolated in dry run"
    exit 1
fi

say "PASS: playbook kill ran in dry run for pod $victim_ns/victim, which is still Running (same uid); no taint, no NetworkPolicy, no label persisted"
