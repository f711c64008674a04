"""test_lease.py: min_healthy_replicas across replicas of playbookd. The check and the delete (or eviction) of
each replica hold a coordination.k8s.io Lease on the pod's owner (lib/lease.c): two playbookd processes in one
queue group never both delete a pod of a Deployment at its minimum plus one; a stale Lease of a dead holder is
taken over; a live one of another holder is waited for, then the action fails as transient; dry run sends every
Lease request with dryRun=All and leaves none; a uid from the API that cannot name a Lease is refused; the Role."""

import datetime
import json
import threading

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, pod_removal_config, run_playbookd, strip_via, wait_until

LEASES = "/apis/coordination.k8s.io/v1/namespaces/playbookd/leases"
SUBJECT = "falco.notice.terminal_shell_in_container"
AT_MINIMUM = "skipped (deployment shop/cart would have 1 ready replica of 3 desired, min_healthy_replicas 2)"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_namespace("playbookd")
    yield fake
    fake.stop()


def alert(pod, ns="shop"):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields})


def config(sa, options, subject=SUBJECT, nats=None, kind="delete-pod"):
    return pod_removal_config(sa, "grace_period_seconds: 0, " + options, kind, nats, subject, queue_group=True)


def replay(text, *lines, flags=()):
    rc, out, err = run_playbookd(text, "--replay", "-", *flags, input_bytes="\n".join(lines).encode())
    return rc, [strip_via(line).split(" -> kill: ", 1)[1] for line in out.splitlines()], err


def lease_calls(kube):
    return [r for r in kube.requests() if r.path.startswith(LEASES)]


def lease_name(kube):
    return "playbookd-replicas-" + kube.app("shop", "deployments", "cart")["metadata"]["uid"]


def micro_time(delta_s=0.0):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_two_replicas_never_both_delete_at_the_minimum(kube, incluster, nats):
    """Replica A's DELETE is held in flight (delayed by the fake) while replica B checks a second pod of the
    same Deployment (3 ready, min_healthy_replicas 2). Each replica has its own subject, so each alert lands on
    a different process whatever NATS's queue group picks: B's check runs while A is between its check and the
    end of its delete. Without a lock shared by the processes B sees 3 ready and deletes too (1 left); with the
    Lease B waits for A's release, then reads 2 ready and skips with the numbers."""
    pods = kube.add_deployment("shop", "cart", 3)
    kube.add_fault(method="DELETE", path=r"/pods/", delay=3.0, times=2)
    options = "min_healthy_replicas: 2, lock_wait: 30s"
    a = Playbookd(config(incluster, options, "falco.notice.shell_a", nats))
    b = Playbookd(config(incluster, options, "falco.notice.shell_b", nats))
    try:
        a.wait_ready()
        b.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish("falco.notice.shell_a", alert(pods[0]))
        wait_until(lambda: kube.in_flight_for("DELETE") == 1, what="replica A's DELETE in flight")
        pub.publish("falco.notice.shell_b", alert(pods[1]))
        wait_until(lambda: a.logged("action") and b.logged("action"), timeout=30, what="both actions")
        assert [x["outcome"] for x in a.logged("action")] == ["ok"]
        assert [x["outcome"] for x in b.logged("action")] == [AT_MINIMUM]
        deletes = [r.path for r in kube.requests() if r.method == "DELETE" and "/pods/" in r.path]
        assert deletes == [f"/api/v1/namespaces/shop/pods/{pods[0]}"], "exactly one pod deleted"
        assert kube.pod("shop", pods[1]) is not None
        creates = [r for r in lease_calls(kube) if r.method == "POST"]
        assert [r.status for r in creates][:2] == [201, 409], "B found A's Lease held"
        holders = [r.json["spec"]["holderIdentity"] for r in creates if r.status == 201]
        assert len(holders) == 2 and holders[0] != holders[1], "B created its own after A's release"
        assert kube.leases() == [], "both released"
        pub.close()
    finally:
        assert a.stop() == 0 and b.stop() == 0
        a.cleanup()
        b.cleanup()


@pytest.mark.parametrize("renew_time", ["2020-01-01T00:00:00.000000Z", None])
def test_a_stale_lease_of_a_dead_holder_is_taken_over(kube, incluster, renew_time):
    pods = kube.add_deployment("shop", "cart", 3)
    stale = kube.add_lease("playbookd", lease_name(kube), "playbookd-5f7c9-crashed_1", renew_time)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2"), alert(pods[0]))
    assert (rc, out) == (0, ["ok"]), err
    assert kube.pod("shop", pods[0]) is None
    calls = [(r.method, r.status) for r in lease_calls(kube)]
    assert calls == [("POST", 409), ("GET", 200), ("PUT", 200), ("DELETE", 200)], calls
    put = lease_calls(kube)[2].json
    assert put["metadata"]["resourceVersion"] == stale["metadata"]["resourceVersion"]
    assert put["spec"]["holderIdentity"] != stale["spec"]["holderIdentity"] and put["spec"]["leaseTransitions"] == 1
    assert put["spec"]["leaseDurationSeconds"] == 25, "twice the 10 s default timeout plus 5 s"
    release = lease_calls(kube)[3].json
    assert release["preconditions"]["uid"] == stale["metadata"]["uid"]
    assert kube.leases() == []


def test_a_live_lease_of_another_holder_is_waited_for_then_fails_transient(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 3)
    live = kube.add_lease("playbookd", lease_name(kube), "playbookd-7d9f-other_4", micro_time())
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2, lock_wait: 300ms"), alert(pods[0]))
    assert rc == 1 and out == [f"failed (another playbookd replica is acting on deployment shop/cart "
                               f"(lease playbookd/{lease_name(kube)}))"], err
    assert kube.pod("shop", pods[0]) is not None
    assert kube.leases() == [live], "neither taken over nor deleted"
    methods = [r.method for r in lease_calls(kube)]
    assert set(methods) == {"POST", "GET"} and methods.count("POST") >= 4, "tried again while waiting"
    pod_reads = [r for r in kube.requests() if r.method == "GET" and r.path.endswith(f"/pods/{pods[0]}")]
    assert len(pod_reads) == 2, "transient: the dispatcher's retry ran the action again"


def test_a_lease_released_meanwhile_lets_the_action_proceed(kube, incluster):
    """The other holder releases within the wait: the action then goes ahead on the numbers read after."""
    pods = kube.add_deployment("shop", "cart", 3)
    kube.add_lease("playbookd", lease_name(kube), "playbookd-7d9f-other_4", micro_time())
    result = []
    run = threading.Thread(target=lambda: result.append(
        replay(config(incluster, "min_healthy_replicas: 2, lock_wait: 30s"), alert(pods[0]))))
    run.start()
    try:
        wait_until(lambda: any(r.method == "GET" for r in lease_calls(kube)), what="the live Lease read")
    finally:
        kube.remove_lease("playbookd", lease_name(kube))  # the other holder is done
        run.join(timeout=60)
    rc, out, err = result[0]
    assert (rc, out) == (0, ["ok"]), err
    assert kube.pod("shop", pods[0]) is None and kube.leases() == []
    calls = [(r.method, r.status) for r in lease_calls(kube)]
    assert calls[:2] == [("POST", 409), ("GET", 200)] and calls[-2:] == [("POST", 201), ("DELETE", 200)], calls


@pytest.mark.parametrize("kind", ["delete-pod", "evict-pod"])
def test_dry_run_sends_every_lease_request_with_dry_run_and_leaves_none(kube, incluster, kind):
    pods = kube.add_deployment("shop", "cart", 3)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2", kind=kind), alert(pods[0]),
                          flags=("--dry-run",))
    assert (rc, out) == (0, ["dry-run"]), err
    calls = lease_calls(kube)
    assert [(r.method, r.status) for r in calls] == [("POST", 201), ("DELETE", 404)], "nothing was stored"
    assert all(r.query.get("dryRun") == ["All"] for r in calls)
    assert calls[1].json["dryRun"] == ["All"] and calls[1].json["preconditions"]["uid"]
    assert kube.leases() == [] and kube.pod("shop", pods[0]) is not None


def test_dry_run_takes_over_a_stale_lease_without_changing_it(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 3)
    stale = kube.add_lease("playbookd", lease_name(kube), "playbookd-5f7c9-crashed_1", "2020-01-01T00:00:00.000000Z")
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2"), alert(pods[0]), flags=("--dry-run",))
    assert (rc, out) == (0, ["dry-run"]), err
    mutations = [r for r in lease_calls(kube) if r.method != "GET"]
    assert [r.method for r in mutations] == ["POST", "PUT", "DELETE"]
    assert all(r.query.get("dryRun") == ["All"] for r in mutations)
    assert kube.leases() == [stale]


def untrusted(kube, where, uid):
    """A pod whose owner (where="pod": the ReplicaSet in its ownerReference; "replicaset": the ReplicaSet's
    Deployment) carries uid."""
    if where == "pod":
        kube.add_replicaset("shop", "batch", 1)
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "batch", "uid": uid}}
        kube.add_owned_pod("shop", "odd", owner=owner)
        return "odd", "ReplicaSet shop/batch"
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart", "uid": uid}}
    return kube.add_replicaset("shop", "cart-5d8c7b9f4", 2, owner=owner)[0], "Deployment shop/cart"


@pytest.mark.parametrize("where", ["pod", "replicaset"])
@pytest.mark.parametrize("uid", ["../../x", "A-UPPER", "u" * 240, "x/y?dryRun=None", "", "x."])
def test_an_owner_uid_that_cannot_name_a_lease_is_refused(kube, incluster, where, uid):
    pod, owner = untrusted(kube, where, uid)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 1"), alert(pod))
    assert rc == 1 and out == [f"failed (the pod's owner {owner} has an invalid uid)"], err
    assert lease_calls(kube) == [] and kube.pod("shop", pod) is not None


def test_a_missing_lock_namespace_fails_with_the_api_answer(kube, incluster):
    pods = kube.add_deployment("shop", "cart", 3)
    rc, out, err = replay(config(incluster, "min_healthy_replicas: 2, lock_namespace: ops"), alert(pods[0]))
    assert rc == 1 and out == ['failed (create lease: HTTP 404 (NotFound: namespaces "ops" not found))'], err
    assert kube.pod("shop", pods[0]) is not None


@pytest.mark.parametrize("value", ["Playbookd", "a.b", "-x", "x" * 64, "a/b"])
def test_lock_namespace_must_be_a_dns_label(incluster, value):
    rc, out, err = run_playbookd(config(incluster, f"min_healthy_replicas: 1, lock_namespace: '{value}'"), "--check")
    assert rc == 1 and "key 'lock_namespace': not a valid namespace name (a DNS-1123 label)" in err, err


def test_print_rbac_grants_leases_in_lock_namespace_only(incluster):
    rc, out, err = run_playbookd(config(incluster, "min_healthy_replicas: 1, lock_namespace: ops"), "--print-rbac")
    assert rc == 0, err
    cluster, role, binding = out.split("---\n")
    assert "leases" not in cluster
    assert role == ("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: playbookd\n"
                    "  namespace: ops\nrules:\n  - apiGroups: [coordination.k8s.io]\n    resources: [leases]\n"
                    "    verbs: [get, create, update, delete]\n")
    assert "kind: RoleBinding" in binding and "namespace: ops" in binding
    rc, out, err = run_playbookd(config(incluster, "ignore_daemonsets: true, lock_namespace: ops"), "--print-rbac")
    assert rc == 0 and "Role" not in out.replace("ClusterRole", ""), "no Lease without min_healthy_replicas"


def test_a_wait_for_one_workloads_lease_does_not_hold_up_another_workload(kube, incluster, nats):
    """Another holder keeps cart's Lease live: the worker on cart's pod waits (lock_wait 30s). A pod of another
    Deployment (web) is checked and deleted meanwhile by another worker: its Lease is its own, and nothing
    process-wide is held through cart's wait. Then cart's Lease is released and cart's pod goes too."""
    carts = kube.add_deployment("shop", "cart", 3)
    webs = kube.add_deployment("shop", "web", 3)
    kube.add_lease("playbookd", lease_name(kube), "playbookd-7d9f-other_4", micro_time())
    pbd = Playbookd(config(incluster, "min_healthy_replicas: 2, lock_wait: 30s", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert(carts[0]))
        wait_until(lambda: any(r.method == "GET" for r in lease_calls(kube)), what="cart's live Lease read")
        pub.publish(SUBJECT, alert(webs[0]))
        wait_until(lambda: pbd.logged("action"), timeout=45, what="a first action")
        first = pbd.logged("action")[0]
        assert pbd.logged("lease busy: gave up waiting") == [], "web did not wait for the end of cart's wait"
        assert (first["target"], first["outcome"]) == (f"pod shop/{webs[0]}", "ok"), "web went first, cart waits"
        assert kube.pod("shop", webs[0]) is None and kube.pod("shop", carts[0]) is not None
        kube.remove_lease("playbookd", lease_name(kube))  # the other holder is done
        wait_until(lambda: len(pbd.logged("action")) == 2, timeout=30, what="cart's action")
        assert pbd.logged("action")[1]["outcome"] == "ok" and kube.pod("shop", carts[0]) is None
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_check_too_slow_for_its_lease_fails_before_acting(kube, incluster):
    """The Lease is never renewed: it lasts twice the request timeout plus 5 s (here 100 ms: 6 s), and the
    action may only start while it still covers one more request (5.1 s). A check slower than that (20 pages
    of the pod list at 60 ms each, well within each request's timeout) must fail as transient before the
    DELETE, since another replica could take the Lease over while this one acts; without the guard the pod
    is deleted."""
    kube.set_page_max(1)
    pods = kube.add_deployment("shop", "cart", 20)
    kube.add_fault(method="GET", path=r"/namespaces/shop/pods$", delay=0.06, times=None)
    text = config(incluster, "min_healthy_replicas: 1").replace(
        "kubernetes:\n", "kubernetes:\n  timeout_ms: 100\n")
    rc, out, err = replay(text, alert(pods[0]))
    assert rc == 1 and out == ["failed (the check on deployment shop/cart took too long: its lease could expire "
                               "before the action ends)"], (out, err)
    assert kube.pod("shop", pods[0]) is not None
    assert not [r for r in kube.requests() if r.method == "DELETE" and "/pods/" in r.path], "no pod deleted"
    assert kube.leases() == [], "released"
    creates = [r for r in lease_calls(kube) if r.method == "POST"]
    assert {r.json["spec"]["leaseDurationSeconds"] for r in creates} == {6}
