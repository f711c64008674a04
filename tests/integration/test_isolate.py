"""test_isolate.py: isolate-pod is honest about NetworkPolicies being additive. Against the fake API server
(which lists policies and evaluates their selectors as kube-apiserver does): another policy that selects
the pod and allows traffic makes the outcome `failed (not isolated ...)`; with `detach: true` the pod's
other labels are removed (one JSON patch guarded by its resourceVersion) and the check runs again; dry run
persists nothing; the bounds on policies and labels fail the action rather than guess. Requests counted."""

import json
import ssl
import threading
import urllib.request

import pytest

from fake_kube import FakeKube
from harness import run_playbookd, strip_via, wait_until

UID = "6f1c1e8a-0000-4000-8000-000000000002"
SUBJECT = "falco.notice.terminal_shell_in_container"
LABELS = {"app": "web", "tier": "front", "example.com/team": "a"}
ISOLATED = "playbookd.io/isolated"
ALLOW_ALL_IN = {"podSelector": {}, "ingress": [{}]}
WEB_IN = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}  # detaching takes the pod out of it


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_pod("default", "web-0", uid=UID, labels=dict(LABELS))
    yield fake
    fake.stop()


def alert(pod="web-0", ns="default"):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "k8s.pod.uid": UID}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": "A shell was spawned", "output_fields": fields})


def run(sa, params="", *flags):
    text = f"""
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 100}}
playbooks:
  cut-off: {{type: isolate-pod{", " + params if params else ""}}}
topics:
  {SUBJECT}: [cut-off]
"""
    rc, out, err = run_playbookd(text, "--replay", "-", "--log-format", "json", *flags, input_bytes=alert().encode())
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    action = [a for a in logged if a.get("msg") == "action"]
    assert len(action) == 1, err
    return rc, strip_via(out.strip()).split(" -> cut-off: ", 1)[1], action[0]


def calls(kube):
    """The requests other than the (asynchronous) Events: (method, last path segment)."""
    return [(r.method, r.path.rsplit("/", 1)[1]) for r in kube.requests() if "/events" not in r.path]


ISOLATE = [("POST", "networkpolicies"), ("PATCH", "web-0"), ("GET", "networkpolicies")]


def test_an_allow_all_policy_selecting_the_pod_is_reported_not_isolated(kube, incluster):
    kube.add_policy("default", "allow-all", ALLOW_ALL_IN)
    rc, outcome, action = run(incluster)
    assert rc == 1
    assert outcome == 'failed (not isolated: NetworkPolicy "allow-all" allows ingress)'
    assert action["attempts"] == "1", "a permanent failure: not retried"
    assert calls(kube) == ISOLATE, "created, labelled, listed: and no detach"
    listed = [r for r in kube.requests() if r.method == "GET"][0]
    assert listed.query == {"limit": ["500"]}, "a bounded list, never dry run"
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {**LABELS, ISOLATED: "true"}
    assert kube.policies_selecting("default", "web-0") == ["allow-all", "playbookd-isolate"]


def test_detach_removes_the_other_labels_and_then_the_pod_is_isolated(kube, incluster):
    kube.add_policy("default", "allow-all", {"podSelector": {"matchLabels": {"app": "web"}},
                                             "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]})
    rc, outcome, action = run(incluster, "detach: true")
    assert rc == 0 and outcome == "ok"
    assert action["target"] == "pod default/web-0 (detached: removed labels app, tier, example.com/team)"
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {ISOLATED: "true"}
    assert kube.policies_selecting("default", "web-0") == ["playbookd-isolate"], "only ours selects it now"
    assert calls(kube) == ISOLATE + [("PATCH", "web-0")]
    patch = [r for r in kube.requests() if r.method == "PATCH"][1]
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert patch.json[0]["op"] == "test" and patch.json[0]["path"] == "/metadata/resourceVersion"
    assert [(op["op"], op["path"]) for op in patch.json[1:]] == [
        ("remove", "/metadata/labels/app"), ("remove", "/metadata/labels/tier"),
        ("remove", "/metadata/labels/example.com~1team")]


def test_detach_that_cannot_help_says_what_it_removed(kube, incluster):
    kube.add_policy("default", "everyone-out", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    rc, outcome, _ = run(incluster, "detach: true")
    assert rc == 1
    assert outcome == ('failed (not isolated: NetworkPolicy "everyone-out" allows egress '
                       "(detached: removed labels app, tier, example.com/team))")
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {ISOLATED: "true"}, "what it says it did"


@pytest.mark.parametrize("spec", [
    {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}]},  # selects other pods
    {"podSelector": {}, "policyTypes": ["Ingress"]},  # selects it, allows nothing
    {"podSelector": {}, "policyTypes": ["Egress"], "ingress": [{}]},  # rules of a direction it does not govern
])
def test_a_policy_that_does_not_let_traffic_through_is_fine(kube, incluster, spec):
    kube.add_policy("default", "other", spec)
    rc, outcome, _ = run(incluster, "detach: true")
    assert rc == 0 and outcome == "ok"
    assert calls(kube) == ISOLATE, "no detach"
    assert set(kube.pod("default", "web-0")["metadata"]["labels"]) == {*LABELS, ISOLATED}


@pytest.mark.parametrize("expression, selects", [
    ({"key": "app", "operator": "In", "values": ["api", "web"]}, True),
    ({"key": "app", "operator": "In", "values": ["api"]}, False),
    ({"key": "app", "operator": "NotIn", "values": ["web"]}, False),
    ({"key": "owner", "operator": "NotIn", "values": ["x"]}, True),  # an absent label is in no set
    ({"key": "tier", "operator": "Exists"}, True),
    ({"key": "owner", "operator": "Exists"}, False),
    ({"key": "owner", "operator": "DoesNotExist"}, True),
    ({"key": ISOLATED, "operator": "DoesNotExist"}, False),  # the pod carries it once labelled
])
def test_match_expressions(kube, incluster, expression, selects):
    kube.add_policy("default", "by-expression", {"podSelector": {"matchLabels": {"example.com/team": "a"},
                                                                 "matchExpressions": [expression]},
                                                 "ingress": [{"from": [{"podSelector": {}}]}]})
    rc, outcome, _ = run(incluster)
    expected = 'failed (not isolated: NetworkPolicy "by-expression" allows ingress)' if selects else "ok"
    assert outcome == expected and rc == (1 if selects else 0)
    assert ("by-expression" in kube.policies_selecting("default", "web-0")) == selects, "the fake agrees"


def test_several_policies_are_counted(kube, incluster):
    for name in ("a-allow", "b-allow", "c-allow"):
        kube.add_policy("default", name, ALLOW_ALL_IN)
    _, outcome, _ = run(incluster)
    assert outcome == 'failed (not isolated: NetworkPolicy "a-allow" allows ingress (and 2 more policies))'


def test_dry_run_detach_persists_nothing_and_says_would(kube, incluster):
    kube.add_policy("default", "web-in", WEB_IN)
    before = kube.pod("default", "web-0")
    rc, outcome, action = run(incluster, "detach: true", "--dry-run")
    assert rc == 0 and outcome == "dry-run"
    assert action["target"] == "pod default/web-0 (detach: would remove labels app, tier, example.com/team)"
    assert kube.pod("default", "web-0") == before, "nothing persisted"
    assert kube.policy("default", "playbookd-isolate") is None
    assert calls(kube) == ISOLATE + [("PATCH", "web-0")]
    mutating = [r for r in kube.requests() if r.method != "GET"]
    assert all(r.query.get("dryRun") == ["All"] for r in mutating), [(r.method, r.query) for r in mutating]
    assert all("dryRun" not in r.query for r in kube.requests() if r.method == "GET"), "reads are real"


def test_dry_run_without_detach_reports_the_leak(kube, incluster):
    kube.add_policy("default", "allow-all", ALLOW_ALL_IN)
    rc, outcome, _ = run(incluster, "", "--dry-run")
    assert rc == 1 and outcome == 'failed (not isolated: NetworkPolicy "allow-all" allows ingress)'


def test_too_many_policies_is_a_failure_not_a_guess(kube, incluster):
    for i in range(501):
        kube.add_policy("default", f"deny-{i:03}", {"podSelector": {"matchLabels": {"app": "x"}}})
    rc, outcome, _ = run(incluster)
    assert rc == 1
    assert outcome == "failed (isolation not verified: more than 500 NetworkPolicies in namespace default)"
    assert calls(kube) == ISOLATE


def test_too_many_labels_is_a_failure_not_a_guess(kube, incluster):
    kube.add_pod("default", "web-0", uid=UID, labels={f"l{i}": "v" for i in range(64)})  # 65 with ours
    rc, outcome, _ = run(incluster, "detach: true")
    assert rc == 1 and outcome == "failed (isolation not verified: the pod has more than 64 labels)"
    assert calls(kube) == ISOLATE[:2], "nothing listed or patched past the bound"


def merge_patch_pod(kube, ns, name, patch):
    """A change by another client of the API server (it bumps the pod's resourceVersion)."""
    req = urllib.request.Request(f"{kube.url}/api/v1/namespaces/{ns}/pods/{name}", data=json.dumps(patch).encode(),
                                 method="PATCH", headers={"Authorization": f"Bearer {kube.token}",
                                                          "Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=kube.ca_path)) as r:
        assert r.status == 200


def test_a_pod_changed_before_detach_is_retried_from_a_fresh_read(kube, incluster):
    kube.add_policy("default", "web-in", WEB_IN)
    kube.add_fault(method="GET", path=r"/networkpolicies$", delay=2.0, times=1)  # a window after the label
    result = {}
    runner = threading.Thread(target=lambda: result.update(zip(("rc", "outcome", "action"),
                                                              run(incluster, "detach: true"))))
    runner.start()
    wait_until(lambda: kube.in_flight_for("GET") == 1, what="the list of policies under way")
    merge_patch_pod(kube, "default", "web-0", {"metadata": {"labels": {"owner": "x"}}})
    runner.join(timeout=60)
    assert result["rc"] == 0 and result["outcome"] == "ok" and result["action"]["attempts"] == "2", result
    removed = "app, tier, example.com/team, owner"
    assert result["action"]["target"] == f"pod default/web-0 (detached: removed labels {removed})"
    assert kube.pod("default", "web-0")["metadata"]["labels"] == {ISOLATED: "true"}
    detaches = [r for r in kube.requests() if r.headers.get("content-type") == "application/json-patch+json"]
    assert [r.status for r in detaches] == [422, 200], "the stale version refused, then a fresh one"
