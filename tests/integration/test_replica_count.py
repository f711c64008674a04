"""test_replica_count.py: min_healthy_replicas counts the owner's healthy pods from the API at check time,
not from the controller's status, which lags the pods. Alerts go through a real nats-server to playbookd; the
fake API server freezes a workload's status (the controller has not caught up) to show the lag. Counted:
the owner's own pods (a Deployment's: those of every ReplicaSet it controls), Ready, not terminating; not a
pod of another controller that the same labels select; every page of the lists, within a bound."""

import json

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, pod_removal_config, wait_until

SUBJECT = "falco.notice.terminal_shell_in_container"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_namespace("playbookd")  # where min_healthy_replicas keeps its Leases (lock_namespace)
    yield fake
    fake.stop()


def alert(pod, ns="shop"):
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}",
                       "output_fields": {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod,
                                         "proc.cmdline": "sh -i"}})


class Engine:
    """playbookd subscribed to NATS with one delete-pod playbook; run() publishes one alert, waits for its
    action and answers its outcome (alerts one at a time: each sees what the one before did)."""

    def __init__(self, nats, sa, options, kind="delete-pod"):
        self.pbd = Playbookd(pod_removal_config(sa, options, kind, nats, SUBJECT))
        self.pbd.wait_ready()
        self.pub = NatsClient(nats.port)

    def run(self, pod, ns="shop"):
        before = len(self.pbd.logged("action"))
        self.pub.publish(SUBJECT, alert(pod, ns))
        wait_until(lambda: len(self.pbd.logged("action")) > before, what="the action")
        return self.pbd.logged("action")[before]["outcome"]

    def close(self):
        self.pub.close()
        assert self.pbd.stop() == 0
        self.pbd.cleanup()


@pytest.fixture
def engine(nats, incluster):
    engines = []

    def start(options, kind="delete-pod"):
        engines.append(Engine(nats, incluster, options, kind))
        return engines[-1]
    yield start
    for e in engines:
        e.close()


def skipped(kind, name, after, desired, minimum, ns="shop"):
    return (f"skipped ({kind} {ns}/{name} would have {after} ready replica{'' if after == 1 else 's'} of {desired} "
            f"desired, min_healthy_replicas {minimum})")


WORKLOADS = {
    "deployment": lambda kube: (kube.add_deployment("shop", "cart", 3), ["deployments", "replicasets"], "cart"),
    "replicaset": lambda kube: (kube.add_replicaset("shop", "batch", 3), ["replicasets"], "batch"),
    "statefulset": lambda kube: (kube.add_statefulset("shop", "db", 3), ["statefulsets"], "db"),
    "daemonset": lambda kube: (kube.add_daemonset("shop", "agent", ["node-1", "node-2", "node-3"]), ["daemonsets"],
                               "agent"),
}


@pytest.mark.parametrize("kind", WORKLOADS)
def test_a_second_alert_a_moment_later_sees_the_first_pod_gone(kube, engine, kind):
    pods, resources, name = WORKLOADS[kind](kube)
    for resource in resources:  # the controller has not yet written status after the first delete
        kube.freeze_status("shop", resource, name if resource != "replicasets" or kind != "deployment"
                           else "cart-5d8c7b9f4")
    pbd = engine("min_healthy_replicas: 2, grace_period_seconds: 0")
    assert pbd.run(pods[0]) == "ok" and kube.pod("shop", pods[0]) is None
    ready = "numberReady" if kind == "daemonset" else "readyReplicas"
    assert kube.app("shop", resources[0], name)["status"][ready] == 3, "the status still counts the deleted pod"
    assert pbd.run(pods[1]) == skipped(kind, name, 1, 3, 2)
    assert kube.pod("shop", pods[1]) is not None and kube.pod("shop", pods[2]) is not None


def test_a_terminating_pod_is_not_counted(kube, engine):
    kube.hold_terminating_pods()
    pods = kube.add_deployment("shop", "cart", 3)
    kube.freeze_status("shop", "deployments", "cart")
    pbd = engine("min_healthy_replicas: 2")  # the pod's own grace period: it terminates for 30 s
    assert pbd.run(pods[0]) == "ok"
    terminating = kube.pod("shop", pods[0])
    assert terminating["metadata"]["deletionTimestamp"] and terminating["status"]["conditions"][0]["status"] == "True"
    assert pbd.run(pods[1]) == skipped("deployment", "cart", 1, 3, 2), "still Ready, but on its way out"
    assert "deletionTimestamp" not in kube.pod("shop", pods[1])["metadata"]


def test_a_pod_of_another_controller_with_the_same_labels_is_not_counted(kube, engine):
    pods = kube.add_deployment("shop", "cart", 3)
    kube.freeze_status("shop", "deployments", "cart")
    others = kube.add_replicaset("shop", "cart-debug", 2, labels={"app": "cart"})  # selected by app=cart too
    kube.add_owned_pod("shop", "cart-standalone", labels={"app": "cart"})
    pbd = engine("min_healthy_replicas: 2, grace_period_seconds: 0")
    assert pbd.run(pods[0]) == "ok"
    assert pbd.run(pods[1]) == skipped("deployment", "cart", 1, 3, 2), "only the Deployment's own pods count"
    assert all(kube.pod("shop", p) is not None for p in [pods[1], pods[2], *others, "cart-standalone"])


def test_a_rollout_counts_the_pods_of_every_replicaset_of_the_deployment(kube, engine):
    old = kube.add_deployment("shop", "cart", 2)  # 2 desired; its ReplicaSet cart-5d8c7b9f4 has 2 pods
    kube.freeze_status("shop", "deployments", "cart")  # readyReplicas 2: the new pod not seen yet
    new = kube.add_replicaset("shop", "cart-7f6b8c9d5", 1, labels={"app": "cart", "pod-template-hash": "7f6b8c9d5"},
                              owner=kube.app("shop", "deployments", "cart"))  # maxSurge: a third pod
    pbd = engine("min_healthy_replicas: 2, grace_period_seconds: 0")
    assert pbd.run(old[0]) == "ok", "one old pod and the new one stay"
    assert pbd.run(new[0]) == skipped("deployment", "cart", 1, 2, 2)
    assert kube.pod("shop", old[1]) is not None and kube.pod("shop", new[0]) is not None


def test_a_pod_its_owner_selector_no_longer_selects_is_not_counted(kube, engine):
    selector = {"matchLabels": {"app": "cart"},
                "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary", "debug"]}]}
    pods = kube.add_deployment("shop", "cart", 3, selector=selector)
    kube.set_pod_labels("shop", pods[2], {"app": "cart", "track": "debug"})  # quarantined: its owner lets it go
    pbd = engine("min_healthy_replicas: 2, grace_period_seconds: 0")
    assert pbd.run(pods[0]) == skipped("deployment", "cart", 1, 3, 2)
    [query] = [r.query for r in kube.requests() if r.path.endswith("/pods")]
    assert query["labelSelector"] == ["app=cart,track notin (canary,debug)"], "the whole selector on the server"
    assert kube.pod("shop", pods[0]) is not None


def test_every_page_of_the_pods_is_read(kube, engine):
    kube.set_page_max(2)  # the server answers 2 pods a page
    pods = kube.add_deployment("shop", "cart", 7, ready=5)
    kube.freeze_status("shop", "deployments", "cart")  # readyReplicas 5
    for pod in pods[5:]:
        kube.set_pod_ready("shop", pod, True)  # now 7 ready: the controller has not seen it yet
    pbd = engine("min_healthy_replicas: 6, grace_period_seconds: 0")
    assert pbd.run(pods[0]) == "ok", "6 stay, the last of them on the fourth page"
    lists = [r.query for r in kube.requests() if r.path == "/api/v1/namespaces/shop/pods"]
    assert len(lists) == 4 and "continue" not in lists[0] and all("continue" in q for q in lists[1:])


def test_a_list_longer_than_the_bound_fails_rather_than_guess(kube, engine):
    kube.set_page_max(1)
    pods = kube.add_deployment("shop", "cart", 51)  # 51 pages of one pod: one more than the bound (50)
    pbd = engine("min_healthy_replicas: 1, grace_period_seconds: 0")
    outcome = pbd.run(pods[0])
    assert outcome == "failed (list pods: more than 50 pages of 100: the replicas are not counted)", outcome
    assert kube.pod("shop", pods[0]) is not None
    assert not any(r.method == "DELETE" and "/pods/" in r.path for r in kube.requests()), "no pod deleted"
    assert pbd.pbd.logged("min_healthy_replicas: list cut: the replicas are not counted", list="list pods",
                          objects_read="5000")


def test_evict_pod_counts_the_same_way(kube, engine):
    kube.hold_terminating_pods()
    pods = kube.add_deployment("shop", "cart", 3)
    kube.freeze_status("shop", "deployments", "cart")
    pbd = engine("min_healthy_replicas: 2", kind="evict-pod")
    assert pbd.run(pods[0]) == "ok" and kube.pod("shop", pods[0])["metadata"]["deletionTimestamp"]
    assert pbd.run(pods[1]) == skipped("deployment", "cart", 1, 3, 2)
