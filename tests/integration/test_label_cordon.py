"""test_label_cordon.py: label-pod, label-node and cordon-node against the fake API server (strict node
schema, merge patches, optimistic locking, dryRun=All), alerts arriving through a real nats-server or
--replay: the final objects, the Events, dry run leaving the cluster unchanged with dryRun on every mutation,
a second run writing nothing new, untrusted names refused without a request, null removing a label, protected
nodes skipped, and the cordon annotation set only when playbookd cordoned the node itself."""

import json

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, run_playbookd, wait_until
from test_fake_kube import MERGE_PATCH, NODE, Client

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
HOST_SUBJECT = "falco.error.write_below_etc"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
CORDONED_BY = "playbookd.io/cordoned-by"
MUTATING = {"DELETE", "PATCH", "POST", "PUT"}
LABELS = '{falco.org/alert: "true", quarantine: null, example.com/note: ""}'
PLAYBOOKS = f"""  tag-pod: {{type: label-pod, labels: {LABELS}}}
  tag-node: {{type: label-node, labels: {{falco.org/alert: "true", pool: ~}}}}
  cordon: {{type: cordon-node}}"""


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1", labels={"pool": "blue"})
    fake.add_node("node-2")
    fake.add_node("cp-1", labels={CONTROL_PLANE: ""})
    fake.add_pod("default", "web-0", node="node-1", uid=UID, labels={"app": "web", "quarantine": "old"})
    fake.add_pod("shop", "cart-7d9f", node="node-2")
    fake.add_pod("kube-system", "coredns-1", node="cp-1")
    yield fake
    fake.stop()


def alert(pod="web-0", ns="default", uid=UID, hostname="node-1"):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    if uid is not None:
        fields["k8s.pod.uid"] = uid
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice", "hostname": hostname,
                       "time": "2026-11-23T03:00:00.000000000Z", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields})


def host_alert(hostname="node-2", fields=None):
    return json.dumps({"rule": "Write below etc", "priority": "Error", "time": "2026-11-23T03:00:00Z",
                       "hostname": hostname, "source": "syscall", "output": "File below /etc opened for writing",
                       "output_fields": {"container.id": "host", "fd.name": "/etc/shadow", **(fields or {})}})


def config(sa, topics, nats=None, extra=""):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 2000}}
playbooks:
{PLAYBOOKS}
topics:
{topics}
{extra}"""


def patches(kube, path=None):
    return [r for r in kube.requests() if r.method == "PATCH" and (path is None or r.path == path)]


def outcomes(pbd):
    return [(a["playbook"], a["outcome"], a.get("target")) for a in pbd.logged("action")]


def run_through_nats(kube, incluster, nats, topics, messages, extra=""):
    """Publishes (subject, alert) messages one at a time, each after the last one's actions; returns the
    action lines of each message."""
    pbd = Playbookd(config(incluster, topics, nats=nats, extra=extra))
    seen = []
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        for subject, message in messages:
            before = len(pbd.logged("action"))
            pub.publish(subject, message)
            wait_until(lambda: len(pbd.logged("action")) > before and all(
                a.get("outcome") for a in pbd.logged("action")), what="the actions of one alert")
            pub.flush()
            seen.append(outcomes(pbd)[before:])
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
    return seen


def test_label_pod_sets_and_removes_labels_with_the_uid(kube, incluster, nats):
    runs = run_through_nats(kube, incluster, nats, f"  {SUBJECT}: [tag-pod]",
                            [(SUBJECT, alert()), (SUBJECT, alert()), (SUBJECT, alert(pod="cart-7d9f", ns="shop",
                                                                                    uid=None))])
    assert runs == [[("tag-pod", "ok", "pod default/web-0")], [("tag-pod", "ok", "pod default/web-0")],
                    [("tag-pod", "ok", "pod shop/cart-7d9f")]]
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {
        "app": "web", "falco.org/alert": "true", "example.com/note": ""}, "quarantine removed, others kept"
    assert kube.pod("shop", "cart-7d9f")["metadata"]["labels"] == {"falco.org/alert": "true", "example.com/note": ""}
    sent = patches(kube)
    labels = {"falco.org/alert": "true", "quarantine": None, "example.com/note": ""}
    assert [r.json for r in sent] == [{"metadata": {"uid": UID, "labels": labels}}] * 2 + [
        {"metadata": {"labels": labels}}], "the uid when the alert has it; null removes"
    assert all(r.headers["content-type"] == MERGE_PATCH for r in sent)
    assert not any(r.method == "GET" for r in kube.requests()), "label-pod reads nothing"
    wait_until(lambda: len(kube.events()) == 3, what="three Events (sent asynchronously)")
    events = sorted(kube.events(), key=lambda e: e["regarding"]["namespace"])
    assert [e["action"] for e in events] == ["LabelPod"] * 3
    assert events[0]["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-0", "namespace": "default",
                                      "uid": UID}
    assert "Terminal shell in container" in events[0]["note"]


def test_label_pod_leaves_a_replacement_pod_alone(kube, incluster):
    kube.add_pod("default", "db-0", node="node-1", uid="00000000-0000-4000-8000-0000000000aa", labels={"a": "b"})
    text = config(incluster, f"  {SUBJECT}: [tag-pod]")
    line = alert(pod="db-0", uid="00000000-0000-4000-8000-0000000000ff")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=line.encode())
    assert rc == 0, err
    assert "tag-pod: skipped (the pod was replaced: its uid is not the alert's)" in out
    assert kube.pod("default", "db-0")["metadata"]["labels"] == {"a": "b"}
    assert [r.status for r in patches(kube)] == [422], "the API server refused the uid"


def test_label_node_labels_the_pods_node_once(kube, incluster, nats):
    runs = run_through_nats(kube, incluster, nats, f"  {SUBJECT}: [tag-node]\n  {HOST_SUBJECT}: [tag-node]",
                            [(SUBJECT, alert()), (SUBJECT, alert()), (HOST_SUBJECT, host_alert("node-2"))])
    assert runs == [[("tag-node", "ok", "node node-1")], [("tag-node", "ok", "node node-1 (already labelled)")],
                    [("tag-node", "ok", "node node-2")]]
    assert kube.node("node-1")["metadata"]["labels"] == {"kubernetes.io/hostname": "node-1",
                                                         "falco.org/alert": "true"}, "pool removed"
    assert kube.node("node-2")["metadata"]["labels"]["falco.org/alert"] == "true"
    node1 = patches(kube, "/api/v1/nodes/node-1")
    assert len(node1) == 1, "the second run writes nothing"
    meta = node1[0].json["metadata"]
    assert node1[0].headers["content-type"] == MERGE_PATCH
    assert meta["labels"] == {"falco.org/alert": "true", "pool": None}
    assert set(meta) == {"uid", "resourceVersion", "labels"}, "guarded by the node as read"
    gets = [r.path for r in kube.requests() if r.method == "GET"]
    assert gets.count("/api/v1/namespaces/default/pods/web-0") == 2, "the pod's node, as taint-node reads it"
    assert "/api/v1/namespaces/shop/pods/cart-7d9f" not in gets, "a host event names its node"
    wait_until(lambda: len(kube.events()) == 2, what="two Events")
    assert sorted((e["action"], e["regarding"]["kind"], e["regarding"]["name"]) for e in kube.events()) == [
        ("LabelNode", "Node", "node-1"), ("LabelNode", "Node", "node-2")]


def test_cordon_marks_only_its_own_cordon(kube, incluster, nats):
    kube.cordon_node("node-2")  # someone else's cordon
    runs = run_through_nats(kube, incluster, nats, f"  {SUBJECT}: [cordon]\n  {HOST_SUBJECT}: [cordon]",
                            [(SUBJECT, alert()), (SUBJECT, alert()), (HOST_SUBJECT, host_alert("node-2"))])
    assert runs == [[("cordon", "ok", "node node-1")], [("cordon", "ok", "node node-1 (already cordoned by playbookd)")],
                    [("cordon", "ok", "node node-2 (already cordoned)")]]
    node1, node2 = kube.node("node-1"), kube.node("node-2")
    assert node1["spec"]["unschedulable"] is True
    assert node1["metadata"]["annotations"] == {CORDONED_BY: "playbookd"}
    assert node2["spec"]["unschedulable"] is True and "annotations" not in node2["metadata"], \
        "a cordon someone else made is not playbookd's"
    sent = patches(kube)
    assert [r.path for r in sent] == ["/api/v1/nodes/node-1"], "one write: the others were cordoned already"
    assert sent[0].headers["content-type"] == MERGE_PATCH
    body = sent[0].json
    assert body["spec"] == {"unschedulable": True}
    assert body["metadata"]["annotations"] == {CORDONED_BY: "playbookd"}
    assert set(body["metadata"]) == {"uid", "resourceVersion", "annotations"}
    wait_until(lambda: len(kube.events()) == 1, what="one Event")
    assert [(e["action"], e["regarding"]["name"]) for e in kube.events()] == [("CordonNode", "node-1")]


def test_cordon_racing_another_cordon_does_not_claim_it(kube, incluster, nats):
    """Someone cordons the node between playbookd's GET and its PATCH: the PATCH carries the resourceVersion
    read, so the API server answers 409; the retry reads the node again and finds it cordoned by another."""
    kube.add_fault(method="PATCH", path=r"/nodes/node-1$", delay=2.0)
    pbd = Playbookd(config(incluster, f"  {SUBJECT}: [cordon]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        wait_until(lambda: kube.in_flight_for("PATCH") == 1, what="the PATCH waiting")
        kube.cordon_node("node-1")
        wait_until(lambda: len(pbd.logged("action")) == 1, what="the action")
        assert outcomes(pbd) == [("cordon", "ok", "node node-1 (already cordoned)")]
        assert pbd.logged("action")[0]["attempts"] == "2"
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
    assert [r.status for r in patches(kube)] == [409]
    assert "annotations" not in kube.node("node-1")["metadata"]
    assert kube.events() == []


def test_dry_run_changes_nothing_and_every_mutation_says_so(kube, incluster):
    before = (kube.pod("default", "web-0"), kube.node("node-1"), kube.node("node-2"))
    text = config(incluster, f"  {SUBJECT}: [tag-pod, tag-node, cordon]\n  {HOST_SUBJECT}: [tag-node, cordon]")
    lines = "\n".join([alert(), host_alert("node-2")]).encode()
    rc, out, err = run_playbookd(text, "--dry-run", "--replay", "-", input_bytes=lines)
    assert rc == 0, err
    results = [line.split(" -> ", 1)[1].split(" via ")[0] for line in out.splitlines()]
    assert results == ["tag-pod: dry-run", "tag-node: dry-run", "cordon: dry-run", "tag-node: dry-run",
                       "cordon: dry-run"]
    assert (kube.pod("default", "web-0"), kube.node("node-1"), kube.node("node-2")) == before
    muts = [r for r in kube.requests() if r.method in MUTATING]
    assert sorted(r.path for r in muts if r.method == "PATCH") == [
        "/api/v1/namespaces/default/pods/web-0", "/api/v1/nodes/node-1", "/api/v1/nodes/node-1",
        "/api/v1/nodes/node-2", "/api/v1/nodes/node-2"]
    assert all(r.status == 200 for r in muts if r.method == "PATCH"), "accepted and validated, not stored"
    assert all(r.query.get("dryRun") == ["All"] for r in muts), [(r.method, r.path, r.query) for r in muts]
    assert sum(1 for r in muts if r.path.endswith("/events")) == 5, "every action's Event is dry-run too"
    assert kube.events() == []


@pytest.mark.parametrize("name", ["../../nodes/x", "a/b", "x" * 300, "web-0?dryRun=None", "web 0", "WEB-0"])
def test_names_from_alerts_never_reach_a_url(kube, incluster, name):
    text = config(incluster, f"  {SUBJECT}: [tag-pod, tag-node, cordon]\n  {HOST_SUBJECT}: [tag-node, cordon]")
    lines = [alert(pod=name, uid=None), alert(ns=name, uid=None), alert(uid="not-a-uid/../x"), host_alert(name)]
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes="\n".join(lines).encode())
    assert rc == 0, err
    assert len(out.splitlines()) == 11
    assert all("skipped (invalid name" in line for line in out.splitlines()), out
    assert kube.requests() == []


def test_protected_nodes_and_namespaces_are_skipped(kube, incluster):
    text = config(incluster, f"  {SUBJECT}: [tag-pod, tag-node, cordon]\n  {HOST_SUBJECT}: [tag-node, cordon]",
                  extra="protected_namespaces: [kube-system, shop]")
    lines = [host_alert("cp-1"), alert(pod="cart-7d9f", ns="shop", uid=None),
             host_alert("node-2", fields={"k8s.ns.name": "shop"})]
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes="\n".join(lines).encode())
    assert rc == 0, err
    results = [line.split(" -> ", 1)[1].split(" via ")[0] for line in out.splitlines()]
    protected = f"skipped (protected node: it has the label {CONTROL_PLANE})"
    host_ns = "skipped (protected namespace shop: the host event names a pod there)"
    assert results == [f"tag-node: {protected}", f"cordon: {protected}",
                       "tag-pod: skipped (protected namespace shop)", "tag-node: skipped (protected namespace shop)",
                       "cordon: skipped (protected namespace shop)", f"tag-node: {host_ns}", f"cordon: {host_ns}"]
    assert [(r.method, r.path) for r in kube.requests()] == [("GET", "/api/v1/nodes/cp-1")] * 2, "read, never written"
    cp = kube.node("cp-1")
    assert "unschedulable" not in cp["spec"] and "falco.org/alert" not in cp["metadata"]["labels"]


def test_a_conflict_is_retried_from_a_fresh_read(kube, incluster):
    kube.add_fault(method="PATCH", path=r"/nodes/node-2$", status=409, times=1)
    text = config(incluster, f"  {HOST_SUBJECT}: [tag-node]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=host_alert("node-2").encode())
    assert rc == 0 and "tag-node: ok" in out, (out, err)
    assert [(r.method, r.status) for r in kube.requests() if r.path == "/api/v1/nodes/node-2"] == [
        ("GET", 200), ("PATCH", 409), ("GET", 200), ("PATCH", 200)]


def print_rbac(playbook):
    rc, out, err = run_playbookd(f"playbooks:\n{PLAYBOOKS}\ntopics:\n  falco.>: [{playbook}]\n", "--print-rbac")
    assert rc == 0, err
    return out.split("rules:\n", 1)[1]


def test_print_rbac_covers_each_playbook():
    events = "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n"
    assert print_rbac("tag-pod") == '  - apiGroups: [""]\n    resources: [pods]\n    verbs: [patch]\n' + events
    node = ('  - apiGroups: [""]\n    resources: [nodes]\n    verbs: [get, patch]\n'
            '  - apiGroups: [""]\n    resources: [pods]\n    verbs: [get]\n' + events)
    assert print_rbac("tag-node") == node
    assert print_rbac("cordon") == node


def test_the_fake_validates_node_patches(kube):
    """What the playbooks send passes the fake's strict node validation, and what the API server refuses the
    fake refuses too: a bad annotation key, an unknown spec field, a wrong type."""
    api = Client(kube)
    version = kube.node("node-1")["metadata"]["resourceVersion"]
    good = {"metadata": {"resourceVersion": version, "annotations": {CORDONED_BY: "playbookd"}},
            "spec": {"unschedulable": True}}
    answer = api.call("PATCH", NODE, good, MERGE_PATCH)
    assert answer.status == 200 and answer.body["spec"]["unschedulable"] is True
    assert api.call("PATCH", NODE, good, MERGE_PATCH).status == 409, "the version read is stale now"
    bad_key = api.call("PATCH", NODE, {"metadata": {"annotations": {"-bad/x": "y"}}}, MERGE_PATCH)
    assert bad_key.status == 422 and bad_key.body["details"]["causes"][0]["field"] == "metadata.annotations"
    unknown = api.call("PATCH", NODE, {"spec": {"cordoned": True}}, MERGE_PATCH)
    assert unknown.status == 422 and 'unknown field "spec.cordoned"' in unknown.body["message"]
    wrong = api.call("PATCH", NODE, {"spec": {"unschedulable": "yes"}}, MERGE_PATCH)
    assert wrong.status == 422
    removed = api.call("PATCH", NODE, {"metadata": {"annotations": {CORDONED_BY: None}},
                                       "spec": {"unschedulable": None}}, MERGE_PATCH)
    assert removed.status == 200 and "unschedulable" not in removed.body["spec"]
    assert CORDONED_BY not in (removed.body["metadata"].get("annotations") or {})
