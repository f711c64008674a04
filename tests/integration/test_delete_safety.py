"""test_delete_safety.py: delete-pod's safety options (shared with evict-pod through lib/owner.c) against the
fake API server's apps/v1 workloads: min_healthy_replicas as a number and as a percentage of the desired
replicas (rounded up), the owner found through ownerReferences (a ReplicaSet's Deployment, a bare ReplicaSet,
a StatefulSet, a DaemonSet), ignore_daemonsets, ignore_statefulsets, ignore_standalone_pods, the requests made,
idempotence, untrusted names and the ClusterRole the options need. How the healthy pods are counted (from
the API, not the controller's lagging status) is test_replica_count.py's."""

import json

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, pod_removal_config, run_playbookd, strip_via, wait_until

SUBJECT = "falco.notice.terminal_shell_in_container"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_node("node-2")
    fake.add_namespace("playbookd")  # where min_healthy_replicas keeps its Leases (lock_namespace)
    yield fake
    fake.stop()


def alert(pod, ns="shop", uid=None):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    if uid is not None:
        fields["k8s.pod.uid"] = uid
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields})


def config(sa, options, kind="delete-pod", nats=None):
    return pod_removal_config(sa, options, kind, nats, SUBJECT)


def replay(text, *lines):
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes="\n".join(lines).encode())
    return rc, [strip_via(line).split(": ", 1)[1].split(" -> kill: ", 1)[1] for line in out.splitlines()], err


def calls(kube):
    return [(r.method, r.path, r.status) for r in kube.requests() if "/events" not in r.path]


def test_a_deployment_at_its_minimum_is_skipped_with_the_numbers(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 2)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2"), alert(pods[0]))
    assert rc == 0 and out == [
        "skipped (deployment shop/cart would have 1 ready replica of 2 desired, min_healthy_replicas 2)"], err
    assert kube.pod("shop", pods[0]) is not None
    lease = "/apis/coordination.k8s.io/v1/namespaces/playbookd/leases"
    uid = kube.app("shop", "deployments", "cart")["metadata"]["uid"]
    assert calls(kube) == [("GET", f"/api/v1/namespaces/shop/pods/{pods[0]}", 200),
                           ("GET", "/apis/apps/v1/namespaces/shop/replicasets/cart-5d8c7b9f4", 200),
                           ("POST", lease, 201),  # the Deployment's Lease, then its numbers
                           ("GET", "/apis/apps/v1/namespaces/shop/deployments/cart", 200),
                           ("GET", "/apis/apps/v1/namespaces/shop/replicasets", 200),
                           ("GET", "/api/v1/namespaces/shop/pods", 200),
                           ("DELETE", f"{lease}/playbookd-replicas-{uid}", 200)], "read, never deleted"
    lists = [r.query for r in kube.requests() if r.path.endswith(("/replicasets", "/pods"))]
    assert lists == [{"labelSelector": ["app=cart"], "limit": ["100"]}] * 2, "selected on the server, paged"
    assert kube.leases() == []


def test_above_the_minimum_the_pod_is_deleted_once_then_the_deployment_is_at_it(kube, incluster, nats):
    pods = kube.add_deployment("shop", "cart", 3)
    pbd = Playbookd(config(incluster, "min_healthy_replicas: 2, grace_period_seconds: 0", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        for pod in pods:
            pub.publish(SUBJECT, alert(pod))
        wait_until(lambda: len(pbd.logged("action")) == 3, what="three actions")
        # Workers run the three at once: the check and the delete of one never interleave with another's.
        assert sorted(a["outcome"] for a in pbd.logged("action")) == [
            "ok", "skipped (deployment shop/cart would have 1 ready replica of 3 desired, min_healthy_replicas 2)",
            "skipped (deployment shop/cart would have 1 ready replica of 3 desired, min_healthy_replicas 2)"]
        [deleted] = [a["target"].split("/")[1] for a in pbd.logged("action") if a["outcome"] == "ok"]
        assert [p for p in pods if kube.pod("shop", p) is None] == [deleted]
        wait_until(lambda: len(kube.events()) == 1, what="the Event")
        assert kube.events()[0]["action"] == "DeletePod" and kube.events()[0]["regarding"]["name"] == deleted
        pub.publish(SUBJECT, alert(deleted))  # again: the pod is gone, nothing to delete
        wait_until(lambda: len(pbd.logged("action")) == 4, what="a fourth action")
        assert pbd.logged("action")[3]["outcome"] == "ok"
        assert sum(1 for r in kube.requests() if r.method == "DELETE" and "/pods/" in r.path) == 1
        assert len(kube.events()) == 1 and kube.leases() == []
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


@pytest.mark.parametrize("minimum, replicas, ready, victim, outcome", [
    ("50%", 3, 3, 0, "ok"),  # 50% of 3 rounded up is 2; 2 left
    ("50%", 3, 2, 0, "skipped (deployment shop/cart would have 1 ready replica of 3 desired, "
                     "min_healthy_replicas 50% of 3 = 2)"),
    ("50%", 3, 2, 2, "ok"),  # the victim is not ready: deleting it leaves the 2 ready ones
    ("34%", 3, 2, 0, "skipped (deployment shop/cart would have 1 ready replica of 3 desired, "
                     "min_healthy_replicas 34% of 3 = 2)"),  # 1.02 rounds up to 2
    ("33%", 3, 2, 0, "ok"),  # 0.99 rounds up to 1
    ("100%", 4, 4, 0, "skipped (deployment shop/cart would have 3 ready replicas of 4 desired, "
                      "min_healthy_replicas 100% of 4 = 4)"),
    ("0%", 1, 1, 0, "ok"),
    ("0", 1, 1, 0, "ok"),
])
def test_min_healthy_replicas_as_a_percentage_of_the_desired_replicas(kube, incluster, minimum, replicas, ready,
                                                                      victim, outcome):
    pods = kube.add_deployment("shop", "cart", replicas, ready=ready)
    rc, out, err = replay(config(incluster, f"min_healthy_replicas: '{minimum}'"), alert(pods[victim]))
    assert out == [outcome], err
    assert (kube.pod("shop", pods[victim]) is None) == (outcome == "ok")


def test_a_bare_replicaset_and_a_statefulset_count_their_own_replicas(kube, incluster):
    rs = kube.add_replicaset("shop", "batch", 2)
    sts = kube.add_statefulset("shop", "db", 3, ready=2)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2"), alert(rs[0]), alert(sts[0]),
                          alert(sts[2]))
    assert out == ["skipped (replicaset shop/batch would have 1 ready replica of 2 desired, min_healthy_replicas 2)",
                   "skipped (statefulset shop/db would have 1 ready replica of 3 desired, min_healthy_replicas 2)",
                   "ok"], err


def test_daemonset_pods(kube, incluster):
    pods = kube.add_daemonset("kube-ops", "node-exporter", ["node-1", "node-2"])
    text = config(incluster, "ignore_daemonsets: true")
    rc, out, err = replay(text, alert(pods[0], ns="kube-ops"))
    assert out == ["skipped (a DaemonSet's pod (daemonset kube-ops/node-exporter) and ignore_daemonsets)"], err
    assert kube.pod("kube-ops", pods[0]) is not None
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2"), alert(pods[0], ns="kube-ops"))
    assert out == ["skipped (daemonset kube-ops/node-exporter would have 1 ready replica of 2 desired, "
                   "min_healthy_replicas 2)"], err
    rc, out, err = replay(config(incluster, "ignore_statefulsets: true"), alert(pods[0], ns="kube-ops"))
    assert out == ["ok"] and kube.pod("kube-ops", pods[0]) is None, "only ignore_daemonsets spares it"


def test_statefulset_pods_with_ignore_statefulsets(kube, incluster):
    pods = kube.add_statefulset("shop", "db", 3)
    rc, out, err = replay(config(incluster, "ignore_statefulsets: true, ignore_daemonsets: true"), alert(pods[1]))
    assert out == ["skipped (a StatefulSet's pod (statefulset shop/db) and ignore_statefulsets)"], err
    assert kube.pod("shop", pods[1]) is not None


def test_a_standalone_pod_is_deleted_unless_ignored(kube, incluster):
    kube.add_owned_pod("shop", "debug")
    kube.add_owned_pod("shop", "debug-2")
    rc, out, err = replay(config(incluster, "ignore_standalone_pods: true"), alert("debug"))
    assert out == ["skipped (a standalone pod (no controller) and ignore_standalone_pods)"], err
    assert kube.pod("shop", "debug") is not None
    rc, out, err = replay(config(incluster, "ignore_daemonsets: true, min_healthy_replicas: 1"), alert("debug-2"))
    assert out == ["ok"] and kube.pod("shop", "debug-2") is None, "no controller: no replicas to count"


def test_evict_pod_shares_the_options(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 2)
    kube.add_owned_pod("shop", "debug")
    text = config(incluster, "min_healthy_replicas: 2, ignore_standalone_pods: true", kind="evict-pod")
    rc, out, err = replay(text, alert(pods[0]), alert("debug"))
    assert out == ["skipped (deployment shop/cart would have 1 ready replica of 2 desired, min_healthy_replicas 2)",
                   "skipped (a standalone pod (no controller) and ignore_standalone_pods)"], err
    assert not any(r.path.endswith("/eviction") for r in kube.requests())


def test_the_alert_uid_is_checked_on_the_read_pod(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 3)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 1"),
                          alert(pods[0], uid="00000000-0000-4000-8000-0000000000ff"))
    assert out == ["skipped (the pod was replaced: its uid is not the alert's)"], err
    assert [m for m, _, _ in calls(kube)] == ["GET"]


def test_without_options_nothing_is_read(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 1)
    rc, out, err = replay(config(incluster, "grace_period_seconds: 0"), alert(pods[0]))
    assert out == ["ok"] and [m for m, _, _ in calls(kube)] == ["DELETE"], err


def test_a_deployment_made_again_under_its_name_is_not_counted_as_the_pods_owner(kube, incluster):
    """The ReplicaSet names Deployment cart by uid; cart was deleted and made again (a new uid): its numbers
    and its Lease would be another object's. Failed, transient, and nothing deleted."""
    pods = kube.add_deployment("shop", "cart", 3)
    kube.recreate_app("shop", "deployments", "cart")
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 1"), alert(pods[0]))
    assert rc == 1 and out == ["failed (deployment shop/cart was replaced (its uid is not the ownerReference's))"], (
        out, err)
    assert kube.pod("shop", pods[0]) is not None
    assert not [r for r in kube.requests() if r.method == "DELETE" and "/pods/" in r.path]
    assert kube.leases() == [], "released"


def test_an_owner_with_an_invalid_name_fails_without_a_request(kube, incluster):
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "../../x", "uid": "u-1"}}
    kube.add_owned_pod("shop", "odd", owner=owner)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 1"), alert("odd"))
    assert rc == 1 and out == ["failed (the pod's owner ReplicaSet has an invalid name)"], err
    assert [m for m, _, _ in calls(kube)] == ["GET"] and kube.pod("shop", "odd") is not None


@pytest.mark.parametrize("value", ["-1", "101%", "2.5", "x", "50 %", "%", "100001", "5%%", "0x10"])
def test_invalid_min_healthy_replicas_is_a_config_error(incluster, value):
    rc, out, err = run_playbookd(config(incluster, f"min_healthy_replicas: '{value}'"), "--check")
    assert rc == 1 and "key 'min_healthy_replicas': expected a number of replicas (0 to 100000)" in err, err


@pytest.mark.parametrize("name", ["../../nodes/x", "a/b", "x" * 300, "web-0?dryRun=None", "WEB-0"])
def test_names_from_alerts_never_reach_a_url(kube, incluster, name):
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 1, ignore_daemonsets: true"), alert(name))
    assert len(out) == 1 and out[0].startswith("skipped (invalid name"), out
    assert kube.requests() == []


def test_print_rbac_adds_the_reads_the_options_need(incluster):
    def rules(options):
        rc, out, err = run_playbookd(config(incluster, options), "--print-rbac")
        assert rc == 0, err
        return out.split("rules:\n", 1)[1]
    assert rules("grace_period_seconds: 0") == (
        '  - apiGroups: [""]\n    resources: [pods]\n    verbs: [delete]\n'
        "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n")
    assert rules("ignore_daemonsets: true") == (
        '  - apiGroups: [""]\n    resources: [pods]\n    verbs: [get, delete]\n'
        "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n")
    cluster, role = rules("min_healthy_replicas: 50%").split("---\n", 1)
    assert cluster == (
        '  - apiGroups: [""]\n    resources: [pods]\n    verbs: [get, list, delete]\n'
        "  - apiGroups: [apps]\n    resources: [daemonsets]\n    verbs: [get]\n"
        "  - apiGroups: [apps]\n    resources: [deployments]\n    verbs: [get]\n"
        "  - apiGroups: [apps]\n    resources: [replicasets]\n    verbs: [get, list]\n"
        "  - apiGroups: [apps]\n    resources: [statefulsets]\n    verbs: [get]\n"
        "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n")
    assert role.startswith("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: playbookd\n"
                           "  namespace: playbookd\nrules:\n  - apiGroups: [coordination.k8s.io]\n"
                           "    resources: [leases]\n    verbs: [get, create, update, delete]\n---\n"), role
