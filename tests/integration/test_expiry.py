"""test_expiry.py: containment that expires, against the fake API server: with expire_after, taint-node,
isolate-pod, label-pod, label-node and cordon-node write playbookd's marks in the same request as their
change, and the sweeper (a thread of the daemon) undoes them once expired: only playbookd's own (another's
taint, label and cordon stay), with an action line and an Event each; state lives on the objects, so a
playbookd killed with -9 and started again undoes them; --release undoes at once; dry run leaves nothing to
sweep; names given to --release are checked. Never a timing: every wait is a bounded wait_until."""

import json

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, run_playbookd, wait_until

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
HOST_SUBJECT = "falco.error.write_below_etc"
THEIRS = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
OURS = {"key": "falco/alert", "value": "true", "effect": "NoSchedule"}
MARKS = ("playbookd.io/expires-at", "playbookd.io/taints", "playbookd.io/labels", "playbookd.io/cordon",
         "playbookd.io/cordoned-by")


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1", taints=[THEIRS], labels={"pool": "blue"})
    fake.add_node("node-2", taints=[OURS])  # someone else's taint, with playbookd's key and effect
    fake.add_pod("default", "web-0", node="node-1", uid=UID, labels={"app": "web", "team": "shop"})
    fake.add_pod("shop", "cart-7d9f", node="node-2")
    yield fake
    fake.stop()


def alert(pod="web-0", ns="default", uid=UID):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "k8s.pod.uid": uid}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice", "hostname": "node-1",
                       "time": "2026-11-23T03:00:00.000000000Z", "source": "syscall", "output": "a shell",
                       "output_fields": {k: v for k, v in fields.items() if v is not None}})


def host_alert(hostname="node-2"):
    return json.dumps({"rule": "Write below etc", "priority": "Error", "time": "2026-11-23T03:00:00Z",
                       "hostname": hostname, "source": "syscall", "output": "File below /etc opened for writing",
                       "output_fields": {"container.id": "host"}})


def config(sa, expire="2s", nats=None, interval="1s", extra=""):
    after = f", expire_after: {expire}" if expire else ""
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 2000}}
expiry: {{interval: {interval}}}
playbooks:
  fence: {{type: taint-node{after}}}
  cut-off: {{type: isolate-pod{after}}}
  tag-pod: {{type: label-pod, labels: {{forensics: "true", team: shop}}{after}}}
  tag-node: {{type: label-node, labels: {{falco.org/alert: "true", pool: blue}}{after}}}
  cordon: {{type: cordon-node{after}}}
topics:
  {SUBJECT}: [fence, cut-off, tag-pod, tag-node, cordon]
  {HOST_SUBJECT}: [fence, cordon]
{extra}"""


def marks_of(obj):
    meta = obj["metadata"]
    return ({k: v for k, v in (meta.get("annotations") or {}).items() if k in MARKS},
            (meta.get("labels") or {}).get("playbookd.io/contained"))


def released(kube):
    node, pod = kube.node("node-1"), kube.pod("default", "web-0")
    return marks_of(node) == ({}, None) and marks_of(pod) == ({}, None)


def patches(kube, path_end):
    return [r for r in kube.requests() if r.method == "PATCH" and r.path.endswith(path_end)]


def contain(kube, incluster, nats, **kwargs):
    """Starts playbookd, publishes the pod alert and node-2's host alert, waits for the seven actions."""
    kube.cordon_node("node-2")  # someone else's cordon
    pbd = Playbookd(config(incluster, nats=nats, **kwargs))
    pbd.wait_ready()
    pub = NatsClient(nats.port)
    pub.publish(SUBJECT, alert())
    pub.publish(HOST_SUBJECT, host_alert())
    wait_until(lambda: len([a for a in pbd.logged("action") if a.get("type") != "release"]) == 7,
               what="seven actions")
    pub.close()
    return pbd


def test_expired_containment_is_undone_and_only_playbookds_own(kube, incluster, nats):
    pbd = contain(kube, incluster, nats)
    try:
        first = [a for a in pbd.logged("action") if a.get("type") != "release"]
        assert all(a["outcome"] == "ok" for a in first), first
        # The marks went in the same request as each change (read from the requests: the sweeper may be quick).
        taint = next(r.json for r in patches(kube, "/nodes/node-1") if isinstance(r.json, list))
        assert taint[0]["op"] == "test" and taint[0]["path"] == "/metadata/resourceVersion"
        assert {"op": "add", "path": "/spec/taints/-", "value": OURS} in taint
        written = {op["path"]: op.get("value") for op in taint}
        assert written["/metadata/annotations"]["playbookd.io/taints"] == "falco/alert:NoSchedule"
        assert written["/metadata/labels/playbookd.io~1contained"] == "true"
        pod_patches = [r.json for r in patches(kube, "/pods/web-0") if isinstance(r.json, dict)]
        isolate = next(p for p in pod_patches if "playbookd.io/isolated" in p["metadata"]["labels"])
        assert isolate["metadata"]["annotations"]["playbookd.io/labels"] == "playbookd.io/isolated=true"
        assert isolate["metadata"]["resourceVersion"] and isolate["metadata"]["uid"] == UID
        tag = next(p for p in pod_patches if "forensics" in p["metadata"]["labels"])
        assert "team=shop" not in tag["metadata"]["annotations"]["playbookd.io/labels"], "team=shop was theirs"
        node2 = kube.node("node-2")
        assert marks_of(node2) == ({}, None), "another's taint and cordon: nothing of playbookd's to mark"
        assert "already tainted" in next(a["target"] for a in first if a["playbook"] == "fence"
                                         and "node-2" in a["target"])

        wait_until(lambda: released(kube), timeout=30, what="the sweeper undid the expired containment")
        node, pod = kube.node("node-1"), kube.pod("default", "web-0")
        assert node["spec"]["taints"] == [THEIRS], "playbookd's taint gone, another's kept"
        assert not node["spec"].get("unschedulable"), "playbookd's cordon lifted"
        assert "falco.org/alert" not in node["metadata"]["labels"] and node["metadata"]["labels"]["pool"] == "blue"
        assert pod["metadata"]["labels"] == {"app": "web", "team": "shop"}, "isolation and forensics labels gone"
        assert kube.policy("default", "playbookd-isolate") is not None, "the shared NetworkPolicy stays"
        node2 = kube.node("node-2")
        assert node2["spec"]["unschedulable"] is True and node2["spec"]["taints"] == [OURS], "another's stay"

        wait_until(lambda: len(pbd.logged("action", type="release")) >= 2, what="two release lines")
        lines = {a["target"]: a for a in pbd.logged("action", type="release")}
        assert lines["node node-1"]["outcome"] == "ok" and lines["node node-1"]["playbook"] == "expiry"
        assert "taint falco/alert:NoSchedule" in lines["node node-1"]["released"]
        assert "cordon" in lines["node node-1"]["released"]
        assert "label playbookd.io/isolated=true" in lines["pod default/web-0"]["released"]
        wait_until(lambda: {"ReleaseNode", "ReleasePod"} <= {e["action"] for e in kube.events()},
                   what="the release Events")
        release = next(e for e in kube.events() if e["action"] == "ReleasePod")
        assert release["reason"] == "ContainmentExpired" and release["regarding"]["uid"] == UID
        undo = [r for r in patches(kube, "/nodes/node-1") if isinstance(r.json, list)][-1].json
        assert undo[0]["op"] == "test", "the undo is guarded by the resourceVersion"
        assert {"op": "remove", "path": "/spec/taints/1"} in undo, "by index: playbookd's taint came second"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_sweeper_resumes_after_a_restart(kube, incluster, nats):
    pbd = contain(kube, incluster, nats, interval="1h")  # its first sweep ran at start, before anything
    pbd.proc.kill()  # kill -9: nothing is saved anywhere but on the objects
    pbd.proc.wait(timeout=10)
    pbd.kill()
    assert OURS in kube.node("node-1")["spec"]["taints"], "no one undid it: the only playbookd is gone"
    assert marks_of(kube.node("node-1"))[1] == "true"
    again = Playbookd(config(incluster, nats=nats))
    try:
        wait_until(lambda: released(kube), timeout=30, what="the new playbookd undid it")
        assert kube.node("node-1")["spec"]["taints"] == [THEIRS]
        assert "playbookd.io/isolated" not in kube.pod("default", "web-0")["metadata"]["labels"]
    finally:
        assert again.stop() == 0
        again.cleanup()


def test_later_expiry_wins(kube, incluster, nats):
    pbd = contain(kube, incluster, nats, expire="1h", interval="1h")
    try:
        at = kube.node("node-1")["metadata"]["annotations"]["playbookd.io/expires-at"]
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
    pbd = Playbookd(config(incluster, nats=nats, expire="2s", interval="1h"))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len(pbd.logged("action")) == 5, what="five actions")
        pub.close()
        node = kube.node("node-1")
        assert node["metadata"]["annotations"]["playbookd.io/expires-at"] == at, "the later (1h) expiry kept"
        assert node["spec"]["taints"] == [THEIRS, OURS], "tainted once"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


PERMANENT_SUBJECT = "falco.critical.terminal_shell_in_container"


def test_a_change_made_for_good_is_not_undone_by_an_earlier_expiry(kube, incluster, nats):
    """The same taint, cordon and pod label made again by playbooks without expire_after come out of
    playbookd's marks ("no expiry" is the latest); what only the expiring playbooks did still expires."""
    permanent = f"""
  fence-for-good: {{type: taint-node}}
  cordon-for-good: {{type: cordon-node}}
  tag-for-good: {{type: label-pod, labels: {{forensics: "true"}}}}
""".rstrip("\n")
    cfg = config(incluster, nats=nats).replace("topics:\n", permanent + "\ntopics:\n  " + PERMANENT_SUBJECT +
                                                ": [fence-for-good, cordon-for-good, tag-for-good]\n")
    pbd = Playbookd(cfg)
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len([a for a in pbd.logged("action") if a.get("type") != "release"]) == 5,
                   what="the five expiring actions")
        pub.publish(PERMANENT_SUBJECT, alert().replace('"Notice"', '"Critical"'))
        wait_until(lambda: len([a for a in pbd.logged("action") if a.get("type") != "release"]) == 8,
                   what="the three actions made for good")
        pub.close()
        later = {a["playbook"]: a for a in pbd.logged("action") if a["playbook"].endswith("-for-good")}
        assert all(a["outcome"] == "ok" for a in later.values()), later
        assert "already tainted: no longer expires" in later["fence-for-good"]["target"]
        assert "already cordoned by playbookd: no longer expires" in later["cordon-for-good"]["target"]

        # What only the expiring playbooks did (node-1's label, the pod's isolation and team labels) still
        # expires: wait for the sweeper to release both objects.
        wait_until(lambda: marks_of(kube.node("node-1"))[1] is None and marks_of(kube.pod("default", "web-0"))[1] is None,
                   timeout=30, what="the sweeper released what still expired")
        node, pod = kube.node("node-1"), kube.pod("default", "web-0")
        assert node["spec"]["taints"] == [THEIRS, OURS], "the taint made for good stays"
        assert node["spec"].get("unschedulable") is True, "the cordon made for good stays"
        assert marks_of(node)[0] == {"playbookd.io/cordoned-by": "playbookd"}, "every expiry mark gone"
        assert marks_of(pod)[0] == {}
        assert "falco.org/alert" not in node["metadata"]["labels"], "label-node's expiring label went"
        assert pod["metadata"]["labels"].get("forensics") == "true", "the pod label made for good stays"
        assert "playbookd.io/isolated" not in pod["metadata"]["labels"], "isolation expired"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def run_release(cfg, *args):
    return run_playbookd(cfg, "--release", *args)


def test_release_pod_and_node(kube, incluster):
    cfg = config(incluster, expire="1h", interval="1h")
    rc, out, err = run_playbookd(cfg, "--replay", "-", input_bytes=(alert() + "\n").encode())
    assert rc == 0, err
    assert marks_of(kube.node("node-1"))[1] == "true" and marks_of(kube.pod("default", "web-0"))[1] == "true"
    kube.clear_requests()

    rc, out, err = run_release(cfg, "node", "node-1")
    assert (rc, out) == (0, "node node-1: ok\n"), err
    node = kube.node("node-1")
    assert node["spec"]["taints"] == [THEIRS] and not node["spec"].get("unschedulable")
    assert marks_of(node) == ({}, None) and "falco.org/alert" not in node["metadata"]["labels"]
    assert marks_of(kube.pod("default", "web-0"))[1] == "true", "only the node was released"

    rc, out, err = run_release(cfg, "pod", "default/web-0")
    assert (rc, out) == (0, "pod default/web-0: ok\n"), err
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {"app": "web", "team": "shop"}
    events = {e["action"]: e for e in kube.events()}
    assert events["ReleasePod"]["reason"] == "ContainmentReleased"
    assert "label forensics=true" in events["ReleasePod"]["note"]

    rc, out, err = run_release(cfg, "pod", "default/web-0")
    assert (rc, out) == (0, "pod default/web-0: skipped (nothing to release)\n"), "nothing left: exit 0"
    rc, out, err = run_release(cfg, "pod", "default/gone")
    assert (rc, out) == (0, "pod default/gone: skipped (gone)\n")
    writes = [r for r in kube.requests() if r.method == "PATCH"]
    assert len(writes) == 2 and all(r.headers["content-type"] == "application/json-patch+json" for r in writes)


def test_release_failure_and_a_cordon_that_does_not_expire(kube, incluster):
    cfg = config(incluster, expire=None)  # no expire_after: nothing expires, --release still undoes the cordon
    rc, _, err = run_playbookd(cfg, "--replay", "-", input_bytes=(alert() + "\n").encode())
    assert rc == 0, err
    assert kube.node("node-1")["metadata"]["annotations"]["playbookd.io/cordoned-by"] == "playbookd"
    kube.add_fault(method="PATCH", path=r"/nodes/node-1$", status=500, times=None)
    rc, out, _ = run_release(cfg, "node", "node-1")
    assert rc == 1 and out.startswith("node node-1: failed (release: HTTP 500")
    kube.clear_faults()
    rc, out, _ = run_release(cfg, "node", "node-1")
    assert (rc, out) == (0, "node node-1: ok\n")
    node = kube.node("node-1")
    assert not node["spec"].get("unschedulable") and "playbookd.io/cordoned-by" not in node["metadata"]["annotations"]
    assert OURS in node["spec"]["taints"], "a taint without expire_after is not recorded: not released"


@pytest.mark.parametrize("kind,name", [("pod", "default/../x"), ("pod", "web-0"), ("pod", "Default/web-0"),
                                       ("node", "node-1/x"), ("node", "-bad"), ("node", "a" * 254),
                                       ("pod", "default/web-0?dryRun=x"), ("volume", "x")])
def test_release_refuses_untrusted_names(kube, incluster, kind, name):
    rc, out, err = run_release(config(incluster), kind, name)
    assert rc == 2 and out == "" and "--release" in err
    assert kube.requests() == [], "no request for a name that is not one"


def test_dry_run_leaves_nothing_to_sweep(kube, incluster, nats):
    pbd = Playbookd(config(incluster, nats=nats), "--dry-run")
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len(pbd.logged("action")) == 5, what="five actions")
        pub.close()
        assert all(a["outcome"] == "dry-run" for a in pbd.logged("action"))
        mutations = [r for r in kube.requests() if r.method in ("PATCH", "POST") and "/events" not in r.path]
        assert mutations and all(r.query.get("dryRun") == ["All"] for r in mutations)
        seen = len([r for r in kube.requests() if r.path == "/api/v1/nodes"])
        wait_until(lambda: len([r for r in kube.requests() if r.path == "/api/v1/nodes"]) >= seen + 3,
                   what="three more sweeps")
        assert marks_of(kube.node("node-1")) == ({}, None) and kube.node("node-1")["spec"]["taints"] == [THEIRS]
        assert pbd.logged("action", type="release") == [], "nothing was marked, so nothing to release"
        lists = [r for r in kube.requests() if r.path in ("/api/v1/nodes", "/api/v1/pods")]
        assert all(r.query["labelSelector"] == ["playbookd.io/contained"] and r.query["limit"] == ["50"]
                   for r in lists)
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_print_rbac_adds_the_sweepers_rules(incluster):
    rc, with_expiry, _ = run_playbookd(config(incluster), "--print-rbac")
    assert rc == 0
    assert "resources: [nodes]\n    verbs: [get, list, patch]" in with_expiry
    assert "resources: [pods]\n    verbs: [get, list, patch]" in with_expiry
    rc, without, _ = run_playbookd(config(incluster, expire=None), "--print-rbac")
    assert rc == 0
    assert "resources: [nodes]\n    verbs: [get, patch]" in without
    assert "resources: [pods]\n    verbs: [get, patch]" in without


def test_expire_after_only_where_it_means_something(incluster):
    bad = config(incluster).replace("playbooks:\n", "playbooks:\n  kill: {type: delete-pod, expire_after: 2s}\n")
    rc, _, err = run_playbookd(bad, "--check")
    assert rc == 1 and "expire_after" in err
    rc, _, err = run_playbookd(config(incluster, interval="500ms"), "--check")
    assert rc == 1 and "interval" in err


def test_fake_lists_across_namespaces_by_label_selector_with_paging(kube):
    from test_fake_kube import Client
    kube.add_pod("a-b", "x", labels={"playbookd.io/contained": "true"})
    kube.add_pod("a", "x", labels={"playbookd.io/contained": "true"})
    kube.add_pod("a", "y", labels={"playbookd.io/contained": "false"})
    client = Client(kube)
    names, token = [], ""
    while True:
        query = "labelSelector=playbookd.io%2Fcontained%3Dtrue&limit=1" + (f"&continue={token}" if token else "")
        status, body = client.call("GET", f"/api/v1/pods?{query}")[:2]
        assert status == 200 and body["kind"] == "PodList"
        names += [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in body["items"]]
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert names == [("a-b", "x"), ("a", "x")], "etcd's order: namespace/name as a string"
    status, body = client.call("GET", "/api/v1/nodes?labelSelector=!pool")[:2]
    assert status == 200 and [n["metadata"]["name"] for n in body["items"]] == ["node-2"]
    status, body = client.call("GET", "/api/v1/pods?labelSelector=Bad%20Key")[:2]
    assert status == 400 and body["reason"] == "BadRequest"
