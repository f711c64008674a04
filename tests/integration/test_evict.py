"""test_evict.py: the evict-pod playbook against the fake API server's pods/eviction subresource: allowed
evictions (the pod gone, an Event), PodDisruptionBudgets that block (429, retried per retry:, then failed with
the budget's message), Retry-After, minAvailable and maxUnavailable with percentages, dry run persisting
nothing with dryRun in the query and in deleteOptions, the uid precondition, idempotence, untrusted names, the
fake's own fidelity (strict schema, name checks) and the ClusterRole."""

import json
import ssl
import urllib.error
import urllib.request

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, run_playbookd, strip_via, wait_until

SUBJECT = "falco.notice.terminal_shell_in_container"
BLOCKED = ("evict pod: HTTP 429 (TooManyRequests: Cannot evict pod as it would violate the pod's disruption budget. "
           "The disruption budget {name} needs {desired} healthy pods and has {current} currently)")


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_deployment("shop", "cart", 3)  # pods cart-5d8c7b9f4-0, -1, -2, all Ready
    fake.add_pod("default", "web-0")
    yield fake
    fake.stop()


POD = "cart-5d8c7b9f4-0"


def alert(pod=POD, ns="shop", uid=None):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    if uid is not None:
        fields["k8s.pod.uid"] = uid
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields})


def config(sa, playbook="{type: evict-pod}", nats=None, attempts=3):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: {attempts}, initial_backoff_ms: 10, max_backoff_ms: 2000}}
playbooks:
  evict: {playbook}
topics:
  {SUBJECT}: [evict]
"""


def replay(text, *lines, args=()):
    rc, out, err = run_playbookd(text, *args, "--replay", "-", input_bytes="\n".join(lines).encode())
    return rc, [strip_via(line).split(": ", 1)[1] for line in out.splitlines()], err


def evictions(kube):
    return [r for r in kube.requests() if r.method == "POST" and r.path.endswith("/eviction")]


def test_an_allowed_eviction_through_nats_removes_the_pod_and_records_an_event(kube, incluster, nats):
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, min_available=2)  # 3 healthy: one may go
    uid = kube.pod("shop", POD)["metadata"]["uid"]
    pbd = Playbookd(config(incluster, "{type: evict-pod, grace_period_seconds: 5}", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert(uid=uid))
        wait_until(lambda: len(pbd.logged("action")) == 1, what="the eviction")
        action = pbd.logged("action")[0]
        assert (action["outcome"], action["target"], action["attempts"]) == ("ok", f"pod shop/{POD}", "1")
        assert kube.pod("shop", POD) is None, "evicted"
        [post] = evictions(kube)
        assert post.status == 201 and post.path == f"/api/v1/namespaces/shop/pods/{POD}/eviction"
        assert post.headers["content-type"] == "application/json" and "dryRun" not in post.query
        assert post.json == {"apiVersion": "policy/v1", "kind": "Eviction",
                             "metadata": {"name": POD, "namespace": "shop"},
                             "deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": uid}}}
        wait_until(lambda: len(kube.events()) == 1, what="the Event (sent asynchronously)")
        event = kube.events()[0]
        assert event["action"] == "EvictPod" and event["regarding"] == {
            "apiVersion": "v1", "kind": "Pod", "name": POD, "namespace": "shop", "uid": uid}
        assert kube.pdb_status("shop", "cart") == (2, 2, 0), "the budget is now spent"
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_blocking_budget_is_retried_then_fails_with_its_message(kube, incluster):
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, min_available=3)
    rc, out, err = replay(config(incluster, attempts=3), alert(), args=("--log-format", "json"))
    assert rc == 1
    assert out == [f"{SUBJECT} -> evict: failed ({BLOCKED.format(name='cart', desired=3, current=3)})"]
    assert [r.status for r in evictions(kube)] == [429, 429, 429], "three attempts, as retry.attempts says"
    line = next(json.loads(l) for l in err.splitlines() if '"msg":"action"' in l)
    assert line["attempts"] == "3"
    assert kube.pod("shop", POD) is not None and kube.events() == []


def test_retry_after_from_the_api_server_is_honoured(kube, incluster):
    """The server's own 429 for a budget it is still processing carries Retry-After."""
    kube.add_fault(method="POST", path="/eviction$", status=429, retry_after=1, times=1)
    rc, out, err = replay(config(incluster), alert(), args=("--log-format", "json"))
    assert rc == 0 and out == [f"{SUBJECT} -> evict: ok"], err
    assert [r.status for r in evictions(kube)] == [429, 201]
    line = next(json.loads(l) for l in err.splitlines() if '"msg":"action"' in l)
    assert line["attempts"] == "2" and float(line["ms"]) >= 1000, "Retry-After: 1 was honoured"


@pytest.mark.parametrize("budget, evicted", [
    ({"max_unavailable": 1}, 1),         # expected 3, desired 2: one may go
    ({"max_unavailable": "34%"}, 2),     # 34% of 3 rounded up is 2: desired 1, two may go
    ({"min_available": "50%"}, 1),       # 50% of 3 rounded up is 2: one may go
    ({"min_available": "67%"}, 0),       # 67% of 3 rounded up is 3: none
    ({"min_available": 0}, 3),
])
def test_budgets_by_min_available_and_max_unavailable(kube, incluster, budget, evicted):
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, **budget)
    pods = [f"cart-5d8c7b9f4-{i}" for i in range(3)]
    rc, out, err = replay(config(incluster, attempts=1), *(alert(pod=p) for p in pods))
    assert out[:evicted] == [f"{SUBJECT} -> evict: ok"] * evicted, out
    assert all(o.startswith(f"{SUBJECT} -> evict: failed (evict pod: HTTP 429") for o in out[evicted:]), out
    assert [kube.pod("shop", p) is None for p in pods] == [i < evicted for i in range(3)]


def test_an_unready_pod_may_go_while_the_budget_holds(kube, incluster):
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, min_available=2)
    kube.add_owned_pod("shop", "cart-extra", labels={"app": "cart"}, ready=False)  # unready costs nothing
    rc, out, err = replay(config(incluster, attempts=1), alert(pod="cart-extra"), alert(pod=POD),
                          alert(pod="cart-5d8c7b9f4-1"))
    assert out == [f"{SUBJECT} -> evict: ok", f"{SUBJECT} -> evict: ok",
                   f"{SUBJECT} -> evict: failed ({BLOCKED.format(name='cart', desired=2, current=2)})"], out


def test_dry_run_persists_nothing_and_says_so_twice(kube, incluster):
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, min_available=2)
    before = kube.pod("shop", POD)
    rc, out, err = replay(config(incluster), alert(), alert(), args=("--dry-run",))
    assert rc == 0 and out == [f"{SUBJECT} -> evict: dry-run"] * 2, err
    assert kube.pod("shop", POD) == before and kube.pdb_status("shop", "cart") == (3, 2, 1)
    posts = evictions(kube)
    assert len(posts) == 2 and all(p.status == 201 for p in posts)
    assert all(p.query.get("dryRun") == ["All"] and p.json["deleteOptions"]["dryRun"] == ["All"] for p in posts)
    assert kube.events() == []
    mutations = [r for r in kube.requests() if r.method != "GET"]
    assert all(r.query.get("dryRun") == ["All"] for r in mutations), "the Events are dry-run too"


def test_a_second_eviction_of_a_gone_pod_is_ok(kube, incluster):
    rc, out, err = replay(config(incluster), alert(), alert())
    assert rc == 0 and out == [f"{SUBJECT} -> evict: ok"] * 2, err
    assert [r.status for r in evictions(kube)] == [201, 404]
    assert [e["action"] for e in kube.events()] == ["EvictPod"], "one Event: the second changed nothing"


def test_a_replaced_pod_is_skipped(kube, incluster):
    rc, out, err = replay(config(incluster), alert(uid="00000000-0000-4000-8000-0000000000ff"))
    assert rc == 0 and out == [f"{SUBJECT} -> evict: skipped (the pod was replaced: its uid is not the alert's)"]
    assert [r.status for r in evictions(kube)] == [409] and kube.pod("shop", POD) is not None


@pytest.mark.parametrize("name", ["../../nodes/x", "a/b", "x" * 300, "web-0?dryRun=None", "web 0", "WEB-0",
                                  "web-0/eviction"])
def test_names_from_alerts_never_reach_a_url(kube, incluster, name):
    rc, out, err = replay(config(incluster), alert(pod=name, ns="default"))
    assert rc == 0 and len(out) == 1 and "skipped (invalid name" in out[0], out
    assert kube.requests() == []


def post(kube, path, body, content_type="application/json"):
    req = urllib.request.Request(f"{kube.url}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {kube.token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kube.ca_path)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_fake_eviction_answers_as_kube_apiserver(kube):
    path = f"/api/v1/namespaces/shop/pods/{POD}/eviction"
    code, body = post(kube, path, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": POD},
                                   "deleteOptions": {"dryRun": ["All"], "gracePeriod": 1}})
    assert code == 400 and 'unknown field "deleteOptions.gracePeriod"' in body["message"]
    code, body = post(kube, path, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}})
    assert code == 400 and body["message"] == "name in URL does not match name in Eviction object"
    code, body = post(kube, path, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": POD},
                                   "deleteOptions": {"dryRun": ["Some"]}})
    assert code == 422 and body["reason"] == "Invalid"
    kube.add_pdb("shop", "cart", {"matchLabels": {"app": "cart"}}, max_unavailable=0)
    code, body = post(kube, path, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": POD}})
    assert code == 429 and body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.", "reason": "TooManyRequests",
        "details": {"causes": [{"reason": "DisruptionBudget",
                                "message": "The disruption budget cart needs 3 healthy pods and has 3 currently"}]},
        "code": 429}
    kube.add_pdb("shop", "cart-2", {"matchExpressions": [{"key": "app", "operator": "Exists"}]}, min_available=0)
    code, body = post(kube, path, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": POD}})
    assert code == 500 and "more than one PodDisruptionBudget" in body["message"]
    code, body = post(kube, "/api/v1/namespaces/default/pods/web-0/eviction",
                      {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}})
    assert (code, body["status"], body["code"]) == (201, "Success", 201) and kube.pod("default", "web-0") is None


def test_print_rbac_names_the_eviction_subresource(incluster):
    rc, out, err = run_playbookd(config(incluster), "--print-rbac")
    assert rc == 0 and out.split("rules:\n", 1)[1] == (
        '  - apiGroups: [""]\n    resources: [pods/eviction]\n    verbs: [create]\n'
        "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n"), out
