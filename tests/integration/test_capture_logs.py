"""test_capture_logs.py: the capture-logs playbook against the fake API server (pod logs per container with
tailLines, limitBytes, timestamps and previous; ConfigMaps checked against the strict schema, the 1 MiB
limit and the namespace's existence), alerts through a real nats-server or --replay: every container's
logs and the alert as received in one ConfigMap, the cap and its marker, hostile bytes stored as valid
UTF-8, Slack naming the ConfigMap, dry run, a redelivered alert, untrusted names."""

import json
import re

from harness import NatsClient, Playbookd, run_playbookd, wait_until

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
EVIDENCE = "playbookd-evidence"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z ")


def alert(pod="web-0", ns="default", uid=UID, **fields):
    """An alert as Falco sends it: evt.time in nanoseconds does not fit a double."""
    out = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i",
           "evt.time": 1685022245478445995, "k8s.pod.uid": uid, **fields}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.478445995Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": out})


def config(sa, playbooks, topics, nats=None):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 2, initial_backoff_ms: 10, max_backoff_ms: 100}}
playbooks:
{playbooks}
topics:
{topics}
"""


def seed(kube, lines=300):
    """web-0 with an init container, two containers (sidecar restarted once) and their logs."""
    kube.add_pod("default", "web-0", uid=UID)
    kube.add_namespace(EVIDENCE)
    kube.set_containers("default", "web-0", ["app", "sidecar"], restarts={"sidecar": 1}, init=["setup"])
    kube.set_logs("default", "web-0", "setup", ["migrations done"])
    kube.set_logs("default", "web-0", "app", [f"app line {i}" for i in range(lines)])
    kube.set_logs("default", "web-0", "sidecar", ["sidecar up"])
    kube.set_logs("default", "web-0", "sidecar", ["sidecar crashed: panic"], previous=True)


def replay(sa, text, *args, playbooks="  evidence: {type: capture-logs}"):
    return run_playbookd(config(sa, playbooks, f"  {SUBJECT}: [evidence]"), *args, "--replay", "-",
                         input_bytes=text.encode())


def lines_of(value):
    """The log lines without their timestamps (each must have one)."""
    out = []
    for line in value.split("\n")[:-1]:  # not splitlines: U+2028 is not a line end here
        assert STAMP.match(line), f"no timestamp: {line!r}"
        out.append(STAMP.sub("", line, count=1))
    return out


def only_configmap(kube):
    cms = kube.configmaps(EVIDENCE)
    assert len(cms) == 1, cms.keys()
    return next(iter(cms.values()))


def test_capture_through_nats_then_slack_names_the_configmap(kube, incluster, nats, slack):
    seed(kube)
    playbooks = f"  evidence: {{type: capture-logs}}\n  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}"
    pbd = Playbookd(config(incluster, playbooks, f"  {SUBJECT}: [evidence, notify]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        sent = alert()
        pub.publish(SUBJECT, sent)
        wait_until(lambda: len(pbd.logged("action")) == 2, what="two actions")
        outcomes = {a["playbook"]: (a["outcome"], a.get("target")) for a in pbd.logged("action")}
        cm = only_configmap(kube)
        name = cm["metadata"]["name"]
        assert outcomes == {"evidence": ("ok", f"configmap {EVIDENCE}/{name}"), "notify": ("ok", None)}
        assert re.fullmatch(r"web-0-20261123t030000z-[0-9a-f]{10}", name)

        data = cm["data"]
        assert sorted(data) == ["alert.json", "app.log", "setup.log", "sidecar.log", "sidecar.previous.log"]
        assert data["alert.json"] == sent, "the alert as received: evt.time keeps all its digits"
        assert lines_of(data["app.log"]) == [f"app line {i}" for i in range(100, 300)], "the last 200 lines"
        assert lines_of(data["setup.log"]) == ["migrations done"]
        assert lines_of(data["sidecar.log"]) == ["sidecar up"]
        assert lines_of(data["sidecar.previous.log"]) == ["sidecar crashed: panic"]
        assert cm["immutable"] is True
        assert cm["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "playbookd",
                                            "playbookd.io/rule": "terminal_shell_in_container",
                                            "playbookd.io/namespace": "default", "playbookd.io/pod": "web-0"}
        notes = cm["metadata"]["annotations"]
        assert notes["playbookd.io/rule"] == "Terminal shell in container"
        assert notes["playbookd.io/pod"] == "default/web-0" and notes["playbookd.io/pod-uid"] == UID

        reads = [r for r in kube.requests() if r.path.endswith("/log")]
        assert sorted((r.query["container"][0], "previous" in r.query) for r in reads) == [
            ("app", False), ("setup", False), ("sidecar", False), ("sidecar", True)]
        for r in reads:
            assert r.query["tailLines"] == ["200"] and r.query["timestamps"] == ["true"]
            assert int(r.query["limitBytes"][0]) > 0
        posts = [r for r in kube.requests() if r.method == "POST" and r.path.endswith("/configmaps")]
        assert [(p.path, p.status) for p in posts] == [(f"/api/v1/namespaces/{EVIDENCE}/configmaps", 201)]

        wait_until(lambda: kube.events(), what="the Event")
        event = kube.events()[0]
        assert event["action"] == "CaptureLogs" and event["regarding"]["name"] == "web-0"

        actions = next(f for f in slack.received("/n")[0]["attachments"][0]["fields"] if f["title"] == "Actions")
        assert f"evidence (capture-logs): ok on configmap {EVIDENCE}/{name}" in actions["value"]
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_redelivered_alert_finds_its_configmap(kube, incluster, nats):
    seed(kube)
    pbd = Playbookd(config(incluster, "  evidence: {type: capture-logs}", f"  {SUBJECT}: [evidence]", nats=nats))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        pub.publish(SUBJECT, alert())
        wait_until(lambda: len(pbd.logged("action")) == 2, what="two actions")
        cm = only_configmap(kube)
        targets = [(a["outcome"], a["target"]) for a in pbd.logged("action")]
        base = f"configmap {EVIDENCE}/{cm['metadata']['name']}"
        assert targets == [("ok", base), ("ok", base + " (already captured)")]
        posts = [r.status for r in kube.requests() if r.method == "POST" and r.path.endswith("/configmaps")]
        assert posts == [201, 409]
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_oversized_logs_are_cut_at_the_cap_keeping_the_newest_lines(kube, incluster):
    kube.add_pod("default", "web-0", uid=UID)
    kube.add_namespace(EVIDENCE)
    kube.set_containers("default", "web-0", ["app", "sidecar"])
    long = "x" * 4000
    for c in ("app", "sidecar"):
        kube.set_logs("default", "web-0", c, [f"{c} {i} {long}" for i in range(150)])  # 600 KB each
    rc, out, err = replay(incluster, alert())
    assert rc == 0, err
    data = only_configmap(kube)["data"]
    logs = {k: v for k, v in data.items() if k.endswith(".log")}
    assert sum(len(v.encode()) for v in logs.values()) <= 512 * 1024, "512 KiB for every log together"
    for c in ("app", "sidecar"):
        first, rest = logs[f"{c}.log"].split("\n", 1)
        dropped = re.fullmatch(r"\[playbookd: (\d+) bytes of older lines dropped: the logs are capped at 512 KiB\]",
                               first)
        assert dropped, first[:100]
        kept = lines_of(rest)
        assert kept[-1] == f"{c} 149 {long}", "the newest line is kept"
        assert all(line.startswith(f"{c} ") and line.endswith(long) for line in kept), "cut on a line boundary"
        assert len(kept) > 50, "each container had its share"
        whole = sum(len(f"{c} {i} {long}") + 1 for i in range(150))  # without timestamps
        assert int(dropped.group(1)) + len(rest.encode()) > whole, "what was dropped and kept is all there was"


def test_hostile_log_bytes_are_stored_as_valid_utf8(kube, incluster):
    kube.add_pod("default", "web-0", uid=UID)
    kube.add_namespace(EVIDENCE)
    kube.set_containers("default", "web-0", ["app", "flood"])
    kube.set_logs("default", "web-0", "app", [b"bad \xff\xfe end", b"overlong \xc0\xaf", b"nul \x00 here",
                                               b"esc \x1b[31mred\x1b[0m", "sep \u2028 ok".encode()])
    kube.set_logs("default", "web-0", "flood", [b"\x01" * 4000 for _ in range(50)])  # 200 KB, 1.2 MB in JSON
    rc, out, err = replay(incluster, alert())
    assert rc == 0, err
    post = next(r for r in kube.requests() if r.method == "POST" and r.path.endswith("/configmaps"))
    post.body.decode("utf-8")  # strict: the request is valid UTF-8
    assert len(post.body) < 3 * 1024 * 1024, "under the API server's request limit"
    data = only_configmap(kube)["data"]
    assert lines_of(data["app.log"]) == ["bad \ufffd\ufffd end", "overlong \ufffd\ufffd", "nul \ufffd here",
                                         "esc \x1b[31mred\x1b[0m", "sep \u2028 ok"]
    assert data["flood.log"].startswith("[playbookd: "), "the flood is cut by its size as JSON text"


def test_dry_run_reads_but_creates_nothing(kube, incluster):
    seed(kube)
    rc, out, err = replay(incluster, alert(), "--dry-run", "--log-format", "json")
    assert rc == 0, err
    assert "evidence: dry-run" in out and f'"target":"configmap {EVIDENCE}/web-0-' in err
    assert kube.configmaps() == {}
    posts = [r for r in kube.requests() if r.method == "POST" and r.path.endswith("/configmaps")]
    assert len(posts) == 1 and posts[0].query["dryRun"] == ["All"] and posts[0].status == 201
    assert len([r for r in kube.requests() if r.path.endswith("/log")]) == 4, "the reads are real"


def test_a_missing_evidence_namespace_fails_clearly(kube, incluster):
    seed(kube)
    rc, out, err = replay(incluster, alert(), playbooks="  evidence: {type: capture-logs, evidence_namespace: gone}")
    assert rc == 1
    assert "failed (the evidence namespace gone does not exist: create it" in out
    assert kube.configmaps() == {}


def test_untrusted_names_are_refused(kube, incluster):
    seed(kube)
    for ns, pod in [("default", "../../api/v1/secrets"), ("default", "web-0?container=x"), ("Default", "web-0")]:
        rc, out, err = replay(incluster, alert(pod=pod, ns=ns))
        assert rc == 0 and "skipped (invalid name" in out, out
    assert kube.requests() == [], "no request carries them"
    rc, out, err = replay(incluster, alert(uid="not a uid!"))
    assert "skipped (invalid name: k8s.pod.uid" in out
    text = config(incluster, "  e: {type: capture-logs, evidence_namespace: ../x}", f"  {SUBJECT}: [e]")
    rc, out, err = run_playbookd(text, "--check")
    assert rc == 1 and "evidence_namespace" in err and "not a valid namespace name" in err


def test_a_replaced_pod_is_skipped(kube, incluster):
    seed(kube)
    rc, out, err = replay(incluster, alert(uid="6f1c1e8a-0000-4000-8000-000000000002"))
    assert rc == 0 and "skipped (the pod was replaced" in out
    assert kube.configmaps() == {}


def test_print_rbac_adds_a_role_in_the_evidence_namespace(incluster):
    text = config(incluster, "  evidence: {type: capture-logs, evidence_namespace: forensics}\n"
                  "  kill: {type: delete-pod}", f"  {SUBJECT}: [evidence, kill]")
    rc, out, err = run_playbookd(text, "--print-rbac")
    assert rc == 0, err
    cluster_role, role, binding = out.split("---\n")
    assert "resources: [configmaps]" not in cluster_role, "no cluster-wide ConfigMap permission"
    assert "resources: [pods]\n    verbs: [get, delete]" in cluster_role
    assert "resources: [pods/log]\n    verbs: [get]" in cluster_role
    assert role.startswith("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n")
    assert "  namespace: forensics\nrules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n" \
           "    verbs: [create]\n" in role
    assert "kind: RoleBinding" in binding and "  namespace: forensics\n" in binding
    assert "kind: Role\n  name: playbookd" in binding and "name: playbookd\n    namespace: playbookd" in binding
