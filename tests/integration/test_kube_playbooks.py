"""test_kube_playbooks.py: the cluster playbooks against the fake API server (HTTPS, strict schemas, dry
run, conflicts), alerts arriving through a real nats-server or --replay: the pod gone, the node tainted with
its old taints kept, the pod isolated, Events recorded; dry run leaves the cluster unchanged; names from
alerts never reach a URL; retries; token rotation; a kind-style kubeconfig."""

import json
import os

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, run_playbookd, strip_via, wait_until

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
MUTATING = {"DELETE", "PATCH", "POST", "PUT"}


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    fake.add_node("node-2")
    fake.add_pod("default", "web-0", node="node-1", uid=UID)
    fake.add_pod("shop", "cart-7d9f", node="node-2")
    fake.add_pod("kube-system", "coredns-1", node="node-1")
    yield fake
    fake.stop()


def alert(pod="web-0", ns="default", uid=UID, rule="Terminal shell in container", priority="Notice", **extra):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    if uid is not None:
        fields["k8s.pod.uid"] = uid
    fields.update(extra.pop("fields", {}))
    body = {"rule": rule, "priority": priority, "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1",
            "source": "syscall", "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields}
    body.update(extra)
    return json.dumps(body)


def host_alert(hostname="node-2"):
    return json.dumps({"rule": "Write below etc", "priority": "Error", "time": "2026-11-23T03:00:00Z",
                       "hostname": hostname, "source": "syscall", "output": "File below /etc opened for writing",
                       "output_fields": {"container.id": "host", "fd.name": "/etc/shadow"}})


def config(sa, playbooks, topics, nats=None, extra=""):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 2000}}
playbooks:
{playbooks}
topics:
{topics}
{extra}"""


ALL = """  kill: {type: delete-pod, grace_period_seconds: 0}
  fence: {type: taint-node}
  cut-off: {type: isolate-pod}"""


def mutations(kube):
    return [r for r in kube.requests() if r.method in MUTATING]


def actions(out):
    return [strip_via(line).split(": ", 1)[1] for line in out.splitlines()]


def test_each_playbook_through_nats(kube, incluster, nats, slack):
    text = config(incluster, ALL + f"\n  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}",
                  f"  {SUBJECT}: [cut-off, fence, kill, notify]", nats=nats)
    pbd = Playbookd(text)
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len(pbd.logged("action")) == 4, what="four actions")
        outcomes = {a["playbook"]: (a["outcome"], a.get("target")) for a in pbd.logged("action")}
        assert outcomes == {"cut-off": ("ok", "pod default/web-0"), "fence": ("ok", "node node-1"),
                            "kill": ("ok", "pod default/web-0"), "notify": ("ok", None)}

        assert kube.pod("default", "web-0") is None, "the pod is gone"
        taints = kube.node("node-1")["spec"]["taints"]
        assert {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"} in taints, "old taint kept"
        assert {"key": "falco/alert", "value": "true", "effect": "NoSchedule"} in taints
        policy = kube.policy("default", "playbookd-isolate")
        assert policy["spec"]["podSelector"] == {"matchLabels": {"playbookd.io/isolated": "true"}}
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert "ingress" not in policy["spec"] and "egress" not in policy["spec"], "no rules: all denied"

        wait_until(lambda: len(kube.events()) >= 3, what="three Events (sent asynchronously)")
        events = kube.events()
        assert sorted(e["action"] for e in events) == ["DeletePod", "IsolatePod", "TaintNode"]
        for e in events:
            assert e["reportingController"] == "playbookd.io/playbookd" and e["type"] == "Warning"
            assert "Terminal shell in container" in e["note"]
        node_event = next(e for e in events if e["action"] == "TaintNode")
        assert node_event["regarding"]["kind"] == "Node" and node_event["regarding"]["name"] == "node-1"
        pod_event = next(e for e in events if e["action"] == "DeletePod")
        assert pod_event["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": "web-0",
                                          "namespace": "default", "uid": UID}

        labelled = [r for r in kube.requests() if r.method == "PATCH" and r.path.endswith("/pods/web-0")]
        assert labelled[0].json == {"metadata": {"uid": UID, "labels": {"playbookd.io/isolated": "true"}}}
        assert labelled[0].headers["content-type"] == "application/merge-patch+json"
        delete = next(r for r in kube.requests() if r.method == "DELETE")
        assert delete.json["preconditions"] == {"uid": UID} and delete.json["gracePeriodSeconds"] == 0
        assert all(r.auth == "token" for r in kube.requests())

        actions_field = next(f for f in slack.received("/n")[0]["attachments"][0]["fields"] if f["title"] == "Actions")
        assert "kill (delete-pod): ok on pod default/web-0" in actions_field["value"]
        assert "fence (taint-node): ok on node node-1" in actions_field["value"]
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_isolate_through_nats_labels_the_pod(kube, incluster, nats):
    pbd = Playbookd(config(incluster, ALL, f"  {SUBJECT}: [cut-off]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        pub.publish(SUBJECT, alert(pod="cart-7d9f", ns="shop", uid=None))
        wait_until(lambda: len(pbd.logged("action")) == 2, what="two isolations")
        assert [a["outcome"] for a in pbd.logged("action")] == ["ok", "ok"]
        for ns, name in [("default", "web-0"), ("shop", "cart-7d9f")]:
            assert kube.pod(ns, name)["metadata"]["labels"]["playbookd.io/isolated"] == "true"
            assert kube.policy(ns, "playbookd-isolate")["spec"]["policyTypes"] == ["Ingress", "Egress"]
        wait_until(lambda: len(kube.events()) >= 2, what="two Events (sent asynchronously)")
        assert sorted((e["regarding"]["namespace"], e["action"]) for e in kube.events()) == [
            ("default", "IsolatePod"), ("shop", "IsolatePod")]
        assert sorted((r.method, r.status) for r in kube.requests() if "networkpolicies" in r.path) == [
            ("GET", 200), ("GET", 200), ("POST", 201), ("POST", 201)], "created, then the namespace's listed"
        kube.clear_requests()
        pub.publish(SUBJECT, alert())  # again: the policy exists (409) and the label is already there
        wait_until(lambda: len(pbd.logged("action")) == 3, what="a second isolation")
        assert pbd.logged("action")[2]["outcome"] == "ok"
        assert [(r.method, r.path.rsplit("/", 1)[1], r.status) for r in kube.requests() if "/events" not in r.path] == [
            ("POST", "networkpolicies", 409), ("GET", "playbookd-isolate", 200), ("PATCH", "web-0", 200),
            ("GET", "networkpolicies", 200)]
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def create_policy(kube, ns, spec):
    """Creates a NetworkPolicy through the fake's API, as another user of the cluster would."""
    import ssl
    import urllib.request
    body = json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "playbookd-isolate", "namespace": ns}, "spec": spec}).encode()
    req = urllib.request.Request(f"{kube.url}/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
                                 data=body, method="POST", headers={"Authorization": f"Bearer {kube.token}",
                                                                    "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kube.ca_path)) as r:
        assert r.status == 201
    kube.clear_requests()


def test_an_existing_policy_that_allows_traffic_is_not_taken_for_isolation(kube, incluster):
    create_policy(kube, "default", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                                    "ingress": [{}], "egress": [{}]})
    text = config(incluster, ALL, f"  {SUBJECT}: [cut-off]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 1
    assert actions(out) == [f"{SUBJECT} -> cut-off: failed (NetworkPolicy playbookd-isolate exists but does not "
                            "deny all traffic to pods labelled playbookd.io/isolated=true)"]
    assert [r.method for r in kube.requests()] == ["POST", "GET"], "checked once, not retried, pod not labelled"
    assert "playbookd.io/isolated" not in kube.pod("default", "web-0")["metadata"].get("labels", {})


def test_an_existing_isolating_policy_is_used(kube, incluster):
    create_policy(kube, "default", {"podSelector": {"matchLabels": {"playbookd.io/isolated": "true"}},
                                    "policyTypes": ["Ingress", "Egress"]})
    text = config(incluster, ALL, f"  {SUBJECT}: [cut-off]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 0 and actions(out) == [f"{SUBJECT} -> cut-off: ok"], err
    assert kube.pod("default", "web-0")["metadata"]["labels"]["playbookd.io/isolated"] == "true"


def test_a_slow_api_server_times_out_and_is_retried(kube, incluster):
    kube.add_fault(method="DELETE", delay=3.0, times=1)
    text = config(incluster, ALL, f"  {SUBJECT}: [kill]").replace("kubernetes:\n", "kubernetes:\n  timeout_ms: 500\n")
    rc, out, err = run_playbookd(text, "--replay", "-", "--log-format", "json", input_bytes=alert().encode())
    assert rc == 0, err
    line = next(json.loads(l) for l in err.splitlines() if '"msg":"action"' in l)
    assert line["outcome"] == "ok" and line["attempts"] == "2"
    assert float(line["ms"]) < 2500, "the slow answer was not waited for"


def test_dry_run_changes_nothing_and_every_mutation_says_so(kube, incluster, slack):
    before = ({k: kube.pod(*k) for k in [("default", "web-0"), ("shop", "cart-7d9f")]},
              kube.node("node-1"), kube.node("node-2"))
    text = config(incluster, ALL + f"\n  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}",
                  f"  {SUBJECT}: [cut-off, fence, kill, notify]\n  falco.error.>: [fence, kill, notify]")
    lines = "\n".join([alert(), alert(pod="cart-7d9f", ns="shop", uid=None), host_alert()]).encode()
    rc, out, err = run_playbookd(text, "--dry-run", "--replay", "-", input_bytes=lines)
    assert rc == 0, err
    assert actions(out) == [
        f"{SUBJECT} -> cut-off: dry-run", f"{SUBJECT} -> fence: dry-run", f"{SUBJECT} -> kill: dry-run",
        f"{SUBJECT} -> notify: ok",
        f"{SUBJECT} -> cut-off: dry-run", f"{SUBJECT} -> fence: dry-run", f"{SUBJECT} -> kill: dry-run",
        f"{SUBJECT} -> notify: ok",
        "falco.error.write_below_etc -> fence: dry-run",
        "falco.error.write_below_etc -> kill: skipped (host event: no pod to act on)",
        "falco.error.write_below_etc -> notify: ok",
    ]
    after = ({k: kube.pod(*k) for k in before[0]}, kube.node("node-1"), kube.node("node-2"))
    assert after == before, "dry run changed the cluster"
    assert kube.policy("default", "playbookd-isolate") is None and kube.events() == []

    muts = mutations(kube)
    assert {r.method for r in muts} == {"DELETE", "PATCH", "POST"}
    assert all(r.query.get("dryRun") == ["All"] for r in muts), [(r.method, r.path, r.query) for r in muts]
    assert all(r.json.get("dryRun") == ["All"] for r in muts if r.method == "DELETE")
    assert any(r.method == "GET" for r in kube.requests()), "reads are real"
    assert sum(1 for r in muts if "/events" in r.path) == 7, "every action's Event is dry-run too"

    posts = slack.received("/n")
    assert len(posts) == 3 and all(p["text"].startswith("[DRY RUN] ") for p in posts)
    assert "kill (delete-pod): dry-run on pod default/web-0" in json.dumps(posts[0])


def test_a_replacement_pod_with_the_same_name_survives(kube, incluster):
    kube.add_pod("default", "db-0", node="node-1", uid="00000000-0000-4000-8000-0000000000aa")
    text = config(incluster, ALL, f"  {SUBJECT}: [kill, cut-off, fence]")
    old_uid = "00000000-0000-4000-8000-0000000000ff"  # the pod the alert was about is gone
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert(pod="db-0", uid=old_uid).encode())
    assert rc == 0, err
    assert actions(out) == [
        f"{SUBJECT} -> kill: skipped (the pod was replaced: its uid is not the alert's)",
        f"{SUBJECT} -> cut-off: skipped (the pod was replaced: its uid is not the alert's)",
        f"{SUBJECT} -> fence: skipped (the pod was replaced: its uid is not the alert's)",
    ]
    pod = kube.pod("default", "db-0")
    assert pod is not None and "playbookd.io/isolated" not in pod["metadata"].get("labels", {})
    assert "taints" not in kube.node("node-1")["spec"] or len(kube.node("node-1")["spec"]["taints"]) == 1


def test_a_host_event_taints_the_node_named_by_hostname_and_deletes_nothing(kube, incluster):
    text = config(incluster, ALL, "  falco.error.>: [kill, cut-off, fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=host_alert("node-2").encode())
    assert rc == 0, err
    assert actions(out) == ["falco.error.write_below_etc -> kill: skipped (host event: no pod to act on)",
                            "falco.error.write_below_etc -> cut-off: skipped (host event: no pod to act on)",
                            "falco.error.write_below_etc -> fence: ok"]
    assert kube.node("node-2")["spec"]["taints"] == [{"key": "falco/alert", "value": "true", "effect": "NoSchedule"}]
    assert not any(r.method == "DELETE" for r in kube.requests())
    assert all(kube.pod(ns, name) for ns, name in [("default", "web-0"), ("shop", "cart-7d9f")])


def test_tainting_twice_writes_once(kube, incluster):
    text = config(incluster, "  fence: {type: taint-node, key: example.com/quarantine, effect: NoExecute}",
                  f"  {SUBJECT}: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=(alert() + "\n" + alert()).encode())
    assert rc == 0, err
    assert len([r for r in kube.requests() if r.method == "PATCH"]) == 1
    taints = kube.node("node-1")["spec"]["taints"]
    assert [t for t in taints if t["key"] == "example.com/quarantine"] == [
        {"key": "example.com/quarantine", "value": "true", "effect": "NoExecute"}]
    assert [e["action"] for e in kube.events()] == ["TaintNode"]


@pytest.mark.parametrize("name", ["../../nodes/x", "a/b", "x" * 300, "web-0?dryRun=None", "web 0", "WEB-0"])
def test_names_from_alerts_never_reach_a_url(kube, incluster, name):
    text = config(incluster, ALL, f"  {SUBJECT}: [kill, cut-off, fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert(pod=name, uid=None).encode())
    assert rc == 0, err
    assert all(a.startswith(SUBJECT) and "skipped (invalid name" in a for a in actions(out)), out
    assert len(actions(out)) == 3
    assert kube.requests() == []


@pytest.mark.parametrize("field", ["k8s.pod.name", "k8s.ns.name", "hostname"])
def test_a_nul_escape_cannot_shorten_a_name(kube, incluster, field):
    """cJSON decodes \\u0000 into a NUL, which would cut "web-0\\u0000/../../x" down to "web-0"."""
    if field == "hostname":
        line = host_alert("node-2\x00/../../x")
    else:
        line = alert(uid=None, fields={field: ("web-0" if field == "k8s.pod.name" else "default") + "\x00/../x"})
    assert "\\u0000" in line
    text = config(incluster, ALL, f"  {SUBJECT}: [kill, cut-off, fence]\n  falco.error.>: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=line.encode())
    assert rc == 0 and out == "" and "a string holds a NUL character" in err
    assert kube.requests() == []


def test_namespaces_and_protected_namespaces(kube, incluster):
    text = config(incluster, ALL, f"  {SUBJECT}: [kill, cut-off, fence]")
    lines = [alert(pod="coredns-1", ns="kube-system", uid=None), alert(pod="x", ns="../kube-system", uid=None)]
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes="\n".join(lines).encode())
    assert rc == 0, err
    assert actions(out)[:3] == [f"{SUBJECT} -> {pb}: skipped (protected namespace kube-system)"
                                for pb in ("kill", "cut-off", "fence")]
    assert all("skipped (invalid name" in a for a in actions(out)[3:])
    assert kube.requests() == [] and kube.pod("kube-system", "coredns-1") is not None


def test_429_with_retry_after_is_retried_then_ok(kube, incluster):
    kube.add_fault(method="DELETE", status=429, retry_after=1, times=1)
    text = config(incluster, ALL, f"  {SUBJECT}: [kill]")
    rc, out, err = run_playbookd(text, "--replay", "-", "--log-format", "json", input_bytes=alert().encode())
    assert rc == 0, err
    assert actions(out) == [f"{SUBJECT} -> kill: ok"]
    deletes = [r for r in kube.requests() if r.method == "DELETE"]
    assert [r.status for r in deletes] == [429, 200]
    line = next(json.loads(l) for l in err.splitlines() if '"msg":"action"' in l)
    assert line["attempts"] == "2" and float(line["ms"]) >= 1000, "Retry-After: 1 was honoured"


def test_500_forever_fails_after_bounded_retries_and_the_next_alert_goes_on(kube, incluster):
    kube.add_fault(method="DELETE", path="/pods/web-0$", status=500, times=None)
    text = config(incluster, ALL, f"  {SUBJECT}: [kill]")
    lines = alert() + "\n" + alert(pod="cart-7d9f", ns="shop", uid=None)
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=lines.encode())
    assert rc == 1
    assert actions(out)[0].startswith(f"{SUBJECT} -> kill: failed (delete pod: HTTP 500")
    assert actions(out)[1] == f"{SUBJECT} -> kill: ok"
    assert len([r for r in kube.requests() if r.method == "DELETE" and r.path.endswith("web-0")]) == 3
    assert kube.pod("default", "web-0") is not None and kube.pod("shop", "cart-7d9f") is None


def test_403_is_not_retried(kube, incluster):
    kube.add_fault(method="PATCH", status=403, times=None)
    text = config(incluster, ALL, f"  {SUBJECT}: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 1 and "fence: failed (patch node: HTTP 403" in out
    assert len([r for r in kube.requests() if r.method == "PATCH"]) == 1


def test_a_dropped_connection_is_retried(kube, incluster):
    kube.add_fault(method="DELETE", drop=True, times=1)
    text = config(incluster, ALL, f"  {SUBJECT}: [kill]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 0, err
    assert actions(out) == [f"{SUBJECT} -> kill: ok"] and kube.pod("default", "web-0") is None


def patch_node_labels(kube, name, labels):
    """Another writer (kubectl label, the node controller) changes the node."""
    import ssl
    import urllib.request
    req = urllib.request.Request(f"{kube.url}/api/v1/nodes/{name}", method="PATCH",
                                 data=json.dumps({"metadata": {"labels": labels}}).encode(),
                                 headers={"Authorization": f"Bearer {kube.token}",
                                          "Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kube.ca_path)) as r:
        assert r.status == 200


def test_a_stale_resource_version_is_retried_from_a_fresh_read(kube, incluster):
    """Another writer changes the node between our GET and PATCH: the test op fails (422) and the whole
    read-then-patch runs again; the old taints and the other writer's change are kept."""
    import threading
    kube.add_fault(method="PATCH", path="/nodes/node-1$", delay=2.0, times=1)  # our first PATCH waits...
    writer = threading.Timer(0.7, patch_node_labels, (kube, "node-1", {"team": "payments"}))  # ...meanwhile
    writer.start()
    text = config(incluster, ALL, f"  {SUBJECT}: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    writer.join()
    assert rc == 0, err
    patches = [r for r in kube.requests() if r.method == "PATCH" and isinstance(r.json, list)]
    assert [r.status for r in patches] == [422, 200]
    for p in patches:
        assert p.headers["content-type"] == "application/json-patch+json"
        assert p.json[0]["op"] == "test" and p.json[0]["path"] == "/metadata/resourceVersion"
        assert p.json[1] == {"op": "add", "path": "/spec/taints/-",
                             "value": {"key": "falco/alert", "value": "true", "effect": "NoSchedule"}}
    assert patches[0].json[0]["value"] != patches[1].json[0]["value"], "the retry read the new version"
    node = kube.node("node-1")
    assert len(node["spec"]["taints"]) == 2 and node["metadata"]["labels"]["team"] == "payments"


def test_a_validation_422_is_not_mistaken_for_a_conflict(kube, incluster):
    kube.add_fault(method="PATCH", status=422, times=None)  # a Status without the test-op cause
    text = config(incluster, ALL, f"  {SUBJECT}: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 1 and "fence: failed (patch node: HTTP 422" in out
    assert len([r for r in kube.requests() if r.method == "PATCH"]) == 1, "not retried"


def test_a_node_without_taints_gets_the_list(kube, incluster):
    text = config(incluster, ALL, f"  {SUBJECT}: [fence]")
    rc, out, err = run_playbookd(text, "--replay", "-",
                                 input_bytes=alert(pod="cart-7d9f", ns="shop", uid=None).encode())
    assert rc == 0, err
    patch = next(r for r in kube.requests() if r.method == "PATCH")
    assert patch.json[1]["path"] == "/spec/taints"
    assert kube.node("node-2")["spec"]["taints"] == [{"key": "falco/alert", "value": "true", "effect": "NoSchedule"}]


def test_the_rotated_token_is_used_at_once(kube, incluster, nats):
    text = config(incluster, ALL, f"  {SUBJECT}: [kill]", nats=nats)
    pbd = Playbookd(text)
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert(pod="cart-7d9f", ns="shop", uid=None))
        wait_until(lambda: len(pbd.logged("action")) == 1, what="first delete")
        old = kube.token
        new = "rotated-" + old[:8]
        with open(os.path.join(incluster, "token"), "w") as f:
            f.write(new + "\n")
        kube.token = new  # the API server now accepts only the new token
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len(pbd.logged("action")) == 2, what="second delete")
        assert [a["outcome"] for a in pbd.logged("action")] == ["ok", "ok"]
        deletes = [r for r in kube.requests() if r.method == "DELETE"]
        assert [r.headers["authorization"] for r in deletes if r.status == 200] == \
            [f"Bearer {old}", f"Bearer {new}"]
        assert kube.pod("default", "web-0") is None
        pub.close()
    finally:
        assert pbd.stop() == 0
        log = open(pbd.log_path).read()
        pbd.cleanup()
    assert old not in log and new not in log, "a token was logged"


@pytest.mark.parametrize("embed", [True, False])
def test_a_kind_style_kubeconfig_with_client_certificates(kube, tmp_path, monkeypatch, embed):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = kube.write_kubeconfig(str(tmp_path / "kubeconfig"), embed=embed, user="cert")
    text = config("/nonexistent", ALL, f"  {SUBJECT}: [kill]").replace(
        "kubernetes:\n", f"kubernetes:\n  kubeconfig: {path}\n")
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 0, err
    assert actions(out) == [f"{SUBJECT} -> kill: ok"]
    assert {r.auth for r in kube.requests()} == {"cert"}


def test_kubeconfig_from_the_environment(kube, tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = kube.write_kubeconfig(str(tmp_path / "kubeconfig"), embed=True, user="token")
    monkeypatch.setenv("KUBECONFIG", f"{path}:/nonexistent/other")
    text = f"playbooks:\n  kill: {{type: delete-pod}}\ntopics:\n  {SUBJECT}: [kill]\n"
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=alert().encode())
    assert rc == 0, err
    assert {r.auth for r in kube.requests()} == {"token"}


def test_no_cluster_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    rc, out, err = run_playbookd(f"topics:\n  {SUBJECT}: [delete-pod]\n", "--replay", "-", input_bytes=b"")
    assert rc == 1 and "not in a cluster" in err
    rc, out, err = run_playbookd(f"topics:\n  {SUBJECT}: [delete-pod]\n", "--check")
    assert rc == 0, "--check validates the file without a cluster"
