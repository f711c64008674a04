#!/usr/bin/env python3
"""demo.py: `make demo`. Starts a local nats-server (with the authorization of manifests/nats.yaml), a fake Kubernetes API server seeded with a few pods
on two nodes (or, with KUBECONFIG set, uses that cluster) and a fake Slack; runs playbookd in dry run with
examples/playbooks.yaml; feeds examples/alerts.jsonl through falco-nats and a named pipe; prints what
happened to each alert; stops everything it started."""

import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import FakeSlack, FalcoNats, Playbookd, authorized_nats, wait_until  # noqa: E402

PODS = [("default", "kubecon", "node-1"), ("default", "alpine", "node-1"), ("default", "nginx", "node-2"),
        ("shop", "cart-7d9f", "node-2"), ("kube-system", "coredns-1", "node-1")]


def start_cluster(workdir, stack):
    """The fake API server seeded with PODS, or the cluster KUBECONFIG names; returns (kubeconfig, label)."""
    if os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"].split(":")[0], f"the cluster in {os.environ['KUBECONFIG']} (dry run)"
    from fake_kube import FakeKube
    kube = FakeKube(os.path.join(workdir, "kube"))
    stack.append(kube.stop)
    kube.add_node("node-1", taints=[{"key": "dedicated", "value": "web", "effect": "NoSchedule"}])
    kube.add_node("node-2")
    for ns, name, node in PODS:
        kube.add_pod(ns, name, node=node)
    stack.append(lambda: check_unchanged(kube))
    return kube.write_kubeconfig(os.path.join(workdir, "kubeconfig")), \
        f"a fake Kubernetes API at {kube.url} ({len(PODS)} pods on 2 nodes)"


def check_unchanged(kube):
    intact = all(kube.pod(ns, name) for ns, name, _ in PODS) and kube.events() == [] and \
        "taints" not in kube.node("node-2")["spec"]
    print(f"The fake cluster is {'unchanged' if intact else 'CHANGED'}: dry run validated every change and "
          f"persisted none ({len([r for r in kube.requests() if r.method != 'GET'])} dry-run requests).")


def demo_config(nats_url, kubeconfig, workdir):
    with open(os.path.join(ROOT, "examples", "playbooks.yaml")) as f:
        text = f.read()
    text = re.sub(r"servers: \[[^\]]*\]", f"servers: [{nats_url}]\n  user: playbookd\n  password: ${{NATS_PASSWORD}}",
                  text)
    text = text.replace("dry_run: true", f"dry_run: true\nkubernetes: {{kubeconfig: {kubeconfig}}}")
    path = os.path.join(workdir, "playbooks.yaml")
    with open(path, "w") as f:
        f.write(text)
    return text


def feed(pipe, pbd, lines):
    """Writes the alerts one by one into the pipe; after each, waits until playbookd goes quiet.
    Returns, for each alert, the action log lines it caused."""
    per_alert, seen = [], 0
    with open(pipe, "wb") as w:
        for line in lines:
            w.write(line + b"\n")
            w.flush()
            count, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < 0.6:
                now = len(pbd.logged("action")) + len(pbd.logged("rejected"))
                if now != count:
                    count, quiet_since = now, time.monotonic()
                time.sleep(0.05)
            actions = pbd.logged("action")
            per_alert.append(actions[seen:])
            seen = len(actions)
    return per_alert


def where(alert):
    fields = alert.get("output_fields") or {}
    if fields.get("k8s.pod.name"):
        return f"pod {fields.get('k8s.ns.name')}/{fields['k8s.pod.name']}"
    if fields.get("container.id") == "host":
        return f"host {alert.get('hostname') or '(no hostname in the alert)'}"
    return f"{alert.get('source', 'unknown')} source, no pod"


def summary(lines, per_alert):
    print()
    for line, actions in zip(lines, per_alert):
        alert = json.loads(line)
        print(f"  {alert['rule']} ({alert['priority']}) on {where(alert)}")
        for a in actions:
            target = f"  {a['target']}" if a.get("target") else ""
            print(f"      -> {a['playbook']:<8} {a['type']:<12} {a['outcome']}{target}")
    print()


def main():
    stack = []
    workdir = tempfile.mkdtemp(prefix="playbookd-demo-")
    try:
        # NATS as shipped: manifests/nats.yaml's authorization, with passwords made for this run.
        passwords = {user: "pw" + secrets.token_hex(16) for user in ("falco", "playbookd")}
        nats = authorized_nats(passwords)
        stack.append(nats.stop)
        os.environ["NATS_PASSWORD"] = passwords["playbookd"]
        slack = FakeSlack()
        stack.append(slack.stop)
        os.environ["SLACK_WEBHOOK_URL"] = slack.url("/services/DEMO")
        kubeconfig, cluster = start_cluster(workdir, stack)
        text = demo_config(nats.url, kubeconfig, workdir)
        pbd = Playbookd(text, "--dry-run")
        stack.append(lambda: (pbd.proc.poll() is None and pbd.proc.send_signal(signal.SIGTERM), pbd.stop(),
                              pbd.cleanup()))
        pbd.wait_ready()
        pipe = os.path.join(workdir, "falco.pipe")
        os.mkfifo(pipe)
        fwd = FalcoNats(nats.url, pipe, env=dict(os.environ, NATS_USER="falco", NATS_PASSWORD=passwords["falco"]))
        stack.append(lambda: (fwd.proc.send_signal(signal.SIGTERM), fwd.stop(), fwd.cleanup()))
        wait_until(lambda: fwd.logged("nats connected") or fwd.logged("forwarding"), what="falco-nats")

        with open(os.path.join(ROOT, "examples", "alerts.jsonl"), "rb") as f:
            lines = [l.rstrip(b"\n") for l in f if l.strip()]
        print("playbookd demo, in dry run")
        print(f"  NATS: nats-server at {nats.url}, authorization as in manifests/nats.yaml "
              "(falco publishes, playbookd reads)")
        print(f"  Kubernetes: {cluster}")
        print(f"  Slack: a fake incoming webhook on loopback")
        print(f"  {len(lines)} Falco alerts from examples/alerts.jsonl -> named pipe -> falco-nats -> NATS -> playbookd")
        per_alert = feed(pipe, pbd, lines)
        actions = pbd.logged("action")
        summary(lines, per_alert)
        outcomes = {}
        for a in actions:
            key = a["outcome"].split(" (")[0]
            outcomes[key] = outcomes.get(key, 0) + 1
        print(f"{len(lines)} alerts, {len(actions)} actions: " +
              ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) +
              f"; {len(slack.received('/services/DEMO'))} Slack messages, each marked [DRY RUN].")
        return 0
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                print(f"demo: while stopping: {e}", file=sys.stderr)
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
