"""test_limits.py: the blast-radius limits against the fake API server, counting its requests: rate limits
(1,000 alerts for 1,000 pods delete exactly 10 with `count: 10, window: 1m`; the top-level limit shared by
two mutating playbooks and not by Slack; what takes a slot and what gives it back; dry run takes one; a
Slack post tells the rate-limited action; a reload keeps the history), protected nodes (a control-plane
node is read and never patched; the label list configurable, an empty one protects nothing) and host
events that name a pod in a protected namespace (no request at all)."""

import json
import re
import signal

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, http_get, run_playbookd, strip_via, wait_until

SHELL = "falco.notice.terminal_shell_in_container"
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_node("cp-1", labels={CONTROL_PLANE: ""})
    fake.add_node("gpu-1", labels={"example.com/keep": "yes"})
    yield fake
    fake.stop()


def alert(pod, ns="default", rule="Terminal shell in container", n=0, fields=None, hostname="node-1"):
    output_fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh"}
    output_fields.update(fields or {})
    return json.dumps({"rule": rule, "priority": "Notice", "time": f"2026-11-23T03:00:{n % 60:02d}.{n:09d}Z",
                       "hostname": hostname, "source": "syscall", "output": f"A shell was spawned in {ns}/{pod}",
                       "output_fields": output_fields})


def host_alert(hostname, fields=None):
    return json.dumps({"rule": "Write below etc", "priority": "Error", "time": "2026-11-23T03:00:00Z",
                       "hostname": hostname, "source": "syscall", "output": "File below /etc opened for writing",
                       "output_fields": {"container.id": "host", "fd.name": "/etc/shadow", **(fields or {})}})


def config(sa, playbooks, topics, nats=None, extra=""):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes: {{service_account_dir: {sa}}}
retry: {{attempts: 2, initial_backoff_ms: 10, max_backoff_ms: 50}}
playbooks:
{playbooks}
topics:
{topics}
{extra}"""


def replay(text, lines):
    """Runs --replay over the alert lines; (exit status, result lines without their "line N: SUBJECT -> ")."""
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=("\n".join(lines) + "\n").encode())
    return rc, [strip_via(line).split(" -> ", 1)[1] for line in out.splitlines()], err


def requests(kube, method, path=""):
    return [r for r in kube.requests() if r.method == method and re.search(path, r.path)]


def series(text, name, **labels):
    """The sum of the samples of a metric whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if m and all(f'{k}="{v}"' in m.group(1).split(",") for k, v in labels.items()):
            total += float(m.group(2))
    return total


def started(text):
    pbd = Playbookd(text)
    pbd.wait_ready()
    return pbd, int(pbd.wait_logged("http listening")[0]["port"])


def wait_metrics(port, predicate, what, timeout=60):
    return wait_until(lambda: (t := http_get(port, "/metrics")[1]) and predicate(t) and t, timeout=timeout, what=what)


# -- rate limits -------------------------------------------------------------------------------------


def test_a_thousand_alerts_for_a_thousand_pods_delete_exactly_ten(kube, incluster, nats):
    for i in range(1000):
        kube.add_pod("default", f"pod-{i}", node="node-1")
    pbd, port = started(config(incluster, "  kill: {type: delete-pod, grace_period_seconds: 0, "
                                          "rate_limit: {count: 10, window: 1m}}",
                               f"  {SHELL}: [kill]", nats=nats, extra="http: {listen: '127.0.0.1:0'}"))
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert(f"pod-{i}", n=i)) for i in range(1000)])
        text = wait_metrics(port, lambda t: series(t, "playbookd_actions_total", playbook="kill") >= 1000,
                            "1,000 actions")
        assert len(requests(kube, "DELETE")) == 10, "exactly ten DELETE requests reached the API server"
        assert sum(kube.pod("default", f"pod-{i}") is None for i in range(1000)) == 10
        assert series(text, "playbookd_actions_total", playbook="kill", outcome="ok") == 10
        assert series(text, "playbookd_actions_total", playbook="kill", outcome="skipped") == 990
        assert series(text, "playbookd_actions_rate_limited_total", playbook="kill", limit="playbook") == 990
        assert series(text, "playbookd_actions_rate_limited_total", limit="global") == 0
        lines = pbd.logged("rate limit reached: actions skipped")
        assert lines[0]["playbook"] == "kill" and lines[0]["limit"] == "10 per 1m" and lines[0]["count"] == "1"
        assert len(lines) <= 2, "logged once per window (the test may straddle one), not once per refusal"
        assert pbd.stop() == 0
        told = sum(int(line["count"]) for line in pbd.logged("rate limit reached: actions skipped"))
        assert told == 990, "every refusal is told by the end, the tail at exit"
    finally:
        pbd.stop()
        pbd.cleanup()


def test_the_top_level_limit_holds_for_all_mutating_playbooks_together(kube, incluster, nats, slack):
    for i in range(20):
        kube.add_pod("default", f"a-{i}", node="node-1")
        kube.add_pod("default", f"b-{i}", node="node-1")
    text = config(incluster, "  kill-a: {type: delete-pod, grace_period_seconds: 0}\n"
                             "  kill-b: {type: delete-pod, grace_period_seconds: 0}\n"
                             f"  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}",
                  "  falco.notice.a: [kill-a, notify]\n  falco.notice.b: [kill-b, notify]", nats=nats,
                  extra="http: {listen: '127.0.0.1:0'}\nrate_limit: {count: 5, window: 1m}")
    pbd, port = started(text)
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([("falco.notice.a", alert(f"a-{i}", rule="A", n=i)) for i in range(20)] +
                         [("falco.notice.b", alert(f"b-{i}", rule="B", n=i)) for i in range(20)])
        metrics = wait_metrics(port, lambda t: series(t, "playbookd_actions_total") >= 80, "80 actions")
        assert len(requests(kube, "DELETE")) == 5, "five deletes in all, whichever playbook made them"
        assert series(metrics, "playbookd_actions_rate_limited_total", limit="global") == 35
        assert series(metrics, "playbookd_actions_rate_limited_total", playbook="notify") == 0
        assert len(slack.received("/n")) == 40, "Slack is not a mutating playbook: the global limit leaves it"
        assert pbd.logged("rate limit reached: actions skipped", scope="all mutating playbooks",
                          limit="5 per 1m")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_what_takes_a_slot_and_what_gives_it_back(kube, incluster):
    """With 2 per minute: target checks that skip (a protected namespace, a host event), a failed delete and
    a replaced pod (409) take no slot; the next two deletes do, and the third is rate limited. Once the
    limit is reached, an action its target check skips still says why, not "rate limit"."""
    for pod in ["broken", "replaced", "a", "b", "c"]:
        kube.add_pod("default", pod, node="node-1")
    kube.add_fault(method="DELETE", path="/pods/broken$", status=500, times=None)
    text = config(incluster, "  kill: {type: delete-pod, rate_limit: {count: 2, window: 1m}}", f"  '>': [kill]")
    rc, results, err = replay(text, [alert("coredns", ns="kube-system"), host_alert("node-1"), alert("broken"),
                                     alert("replaced", fields={"k8s.pod.uid": "00000000-0000-4000-8000-000000000000"}),
                                     alert("a"), alert("b"), alert("c"), alert("coredns", ns="kube-system")])
    assert rc == 1, err
    assert [r.split(": ", 1)[1] for r in results] == [
        "skipped (protected namespace kube-system)", "skipped (host event: no pod to act on)",
        "failed (delete pod: HTTP 500 (InternalError: Internal error occurred: injected fault))",
        "skipped (the pod was replaced: its uid is not the alert's)",
        "ok", "ok", "skipped (rate limit: 2 per 1m)",
        "skipped (protected namespace kube-system)"], results  # its own reason, not the limit: it takes no slot
    assert [r.path.rsplit("/", 1)[1] for r in requests(kube, "DELETE")] == ["broken", "broken", "replaced", "a", "b"]


def test_dry_run_takes_a_slot(kube, incluster):
    for pod in ["a", "b", "c"]:
        kube.add_pod("default", pod, node="node-1")
    text = config(incluster, "  kill: {type: delete-pod, rate_limit: {count: 2, window: 1m}}", f"  '>': [kill]",
                  extra="dry_run: true")
    rc, results, err = replay(text, [alert("a"), alert("b"), alert("c")])
    assert rc == 0, err
    assert [r.split(": ", 1)[1] for r in results] == ["dry-run", "dry-run", "skipped (rate limit: 2 per 1m)"]
    assert len(requests(kube, "DELETE")) == 2 and all(r.json["dryRun"] == ["All"] for r in requests(kube, "DELETE"))


def test_slack_reports_the_rate_limited_action(kube, incluster, slack):
    for pod in ["a", "b"]:
        kube.add_pod("default", pod, node="node-1")
    text = config(incluster, "  kill: {type: delete-pod}\n"
                             f"  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}",
                  f"  '>': [kill, notify]", extra="rate_limit: {count: 1, window: 1m}")
    rc, results, err = replay(text, [alert("a"), alert("b")])
    assert rc == 0, err
    assert results[2] == "kill: skipped (rate limit: 1 per 1m for all mutating playbooks)", results
    assert results[3] == "notify: ok"
    posts = slack.received("/n")
    actions = [next(f["value"] for f in p["attachments"][0]["fields"] if f["title"] == "Actions") for p in posts]
    assert "kill (delete-pod): ok on pod default/a" in actions[0]
    assert ("kill (delete-pod): skipped (rate limit: 1 per 1m for all mutating playbooks) on pod default/b"
            in actions[1]), actions[1]
    assert kube.pod("default", "b") is not None


def test_a_reload_keeps_the_history(kube, incluster, nats):
    """2 per minute, three alerts: two deletes. A reload raises the count to 3: the two deletes before it
    still count, so of three more alerts one is acted on (a reload that forgot would allow three)."""
    for i in range(6):
        kube.add_pod("default", f"pod-{i}", node="node-1")
    text = config(incluster, "  kill: {type: delete-pod, rate_limit: {count: 2, window: 1m}}",
                  f"  {SHELL}: [kill]", nats=nats, extra="http: {listen: '127.0.0.1:0'}")
    pbd, port = started(text)
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert(f"pod-{i}", n=i)) for i in range(3)])
        wait_metrics(port, lambda t: series(t, "playbookd_actions_total", playbook="kill") >= 3, "three actions")
        assert len(requests(kube, "DELETE")) == 2
        with open(pbd.config, "w") as f:
            f.write(text.replace("count: 2", "count: 3"))
        pbd.proc.send_signal(signal.SIGHUP)
        pbd.wait_logged("config reloaded")
        pub.publish_many([(SHELL, alert(f"pod-{i}", n=i)) for i in range(3, 6)])
        metrics = wait_metrics(port, lambda t: series(t, "playbookd_actions_total", playbook="kill") >= 6,
                               "six actions")
        assert len(requests(kube, "DELETE")) == 3, "the two deletes before the reload count against the new 3"
        assert series(metrics, "playbookd_actions_rate_limited_total", playbook="kill") == 3
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


# -- protected nodes and protected namespaces -------------------------------------------------------


def test_a_control_plane_node_is_read_and_never_patched(kube, incluster, nats):
    kube.add_pod("default", "on-cp", node="cp-1")
    kube.add_pod("default", "on-worker", node="node-1")
    pbd = Playbookd(config(incluster, "  fence: {type: taint-node}", "  '>': [fence]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish("falco.error.write_below_etc", host_alert("cp-1"))
        pub.publish(SHELL, alert("on-cp"))
        pub.publish(SHELL, alert("on-worker"))
        wait_until(lambda: len(pbd.logged("action")) == 3, what="three actions")
        outcomes = sorted((a["outcome"], a.get("target")) for a in pbd.logged("action"))
        reason = f"skipped (protected node: it has the label {CONTROL_PLANE})"
        assert outcomes == [("ok", "node node-1"), (reason, "node cp-1"), (reason, "node cp-1")], outcomes
        assert len(requests(kube, "GET", "/nodes/cp-1$")) == 2
        assert requests(kube, "PATCH", "/nodes/cp-1$") == [], "the control plane is never tainted"
        assert len(requests(kube, "PATCH", "/nodes/node-1$")) == 1
        assert "taints" not in kube.node("cp-1")["spec"]
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_the_protected_labels_are_configurable(kube, incluster):
    lines = [host_alert("cp-1"), host_alert("gpu-1")]
    text = config(incluster, "  fence: {type: taint-node}", "  '>': [fence]",
                  extra="protected_nodes: {labels: [example.com/keep]}")
    rc, results, err = replay(text, lines)
    assert rc == 0, err
    assert results == ["fence: ok", "fence: skipped (protected node: it has the label example.com/keep)"]
    assert [r.path for r in requests(kube, "PATCH")] == ["/api/v1/nodes/cp-1"]
    kube.clear_requests()
    rc, results, err = replay(text.replace("[example.com/keep]", "[]"), lines)  # an empty list protects none
    assert rc == 0 and results == ["fence: ok", "fence: ok"], (results, err)
    assert [r.path for r in requests(kube, "PATCH")] == ["/api/v1/nodes/gpu-1"]


def test_a_host_event_naming_a_protected_namespace_makes_no_request(kube, incluster, nats):
    """A host event (container.id host) whose alert names a pod in kube-system is skipped on receipt:
    no GET of the node, no PATCH, no request at all."""
    pbd = Playbookd(config(incluster, "  fence: {type: taint-node}", "  '>': [fence]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish("falco.error.write_below_etc",
                    host_alert("cp-1", fields={"k8s.ns.name": "kube-system", "k8s.pod.name": "kube-proxy-x"}))
        pub.publish("falco.error.write_below_etc", host_alert("node-1", fields={"k8s.ns.name": "kube-system"}))
        pub.publish("falco.error.write_below_etc", host_alert("node-1", fields={"k8s.ns.name": "default"}))
        wait_until(lambda: len(pbd.logged("action")) == 3, what="three actions")
        outcomes = [a["outcome"] for a in pbd.logged("action")]
        skip = "skipped (protected namespace kube-system: the host event names a pod there)"
        assert outcomes == [skip, skip, "ok"], outcomes
        assert [(r.method, r.path) for r in kube.requests() if not r.path.endswith("/events")] == [
            ("GET", "/api/v1/nodes/node-1"), ("PATCH", "/api/v1/nodes/node-1")], "only the third alert's"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
