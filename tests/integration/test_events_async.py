"""test_events_async.py: Kubernetes Events never make an action wait. The action's outcome is final when its
own request is answered; Events go out later from a bounded queue, best effort, and are counted
(playbookd_events_total) and logged when they fail or are dropped."""

import json
import re

import pytest

from fake_kube import FakeKube
from harness import NatsClient, Playbookd, http_get, run_playbookd, wait_until

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
EVENTS = r"^/apis/events\.k8s\.io/v1/namespaces/[^/]+/events$"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_pod("default", "web-0", node="node-1", uid=UID)
    yield fake
    fake.stop()


@pytest.fixture
def sa(incluster):
    """The service account directory of conftest's in-cluster environment, against this module's kube."""
    return incluster


def alert(pod="web-0", uid=UID):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": "default", "k8s.pod.name": pod, "k8s.pod.uid": uid}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice", "hostname": "node-1",
                       "time": "2026-11-23T03:00:00.000000000Z", "source": "syscall",
                       "output": f"A shell was spawned in default/{pod}", "output_fields": fields})


def config(sa, nats=None):
    return f"""
{f"nats: {{servers: [{nats.url}]}}" if nats else ""}
http: {{listen: "127.0.0.1:0"}}
kubernetes:
  service_account_dir: {sa}
playbooks:
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
  {SUBJECT}: [kill]
"""


def metric(port, name, **labels):
    status, text = http_get(port, "/metrics")
    assert status == 200
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{re.escape(name)}{{{re.escape(selector)}}} (\d+)$", text, re.M)
    assert match, f"{name}{{{selector}}} not in /metrics"
    return int(match.group(1))


def test_a_slow_event_does_not_delay_the_action(kube, sa, nats):
    kube.add_fault(method="POST", path=EVENTS, delay=2, times=None)
    pbd = Playbookd(config(sa, nats))
    try:
        pbd.wait_ready()
        port = int(pbd.wait_logged("http listening")[0]["port"])
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        (action,) = pbd.wait_logged("action")
        assert action["outcome"] == "ok" and kube.pod("default", "web-0") is None
        assert float(action["ms"]) < 1000, "the action waited for its Event"
        wait_until(lambda: kube.in_flight_for("POST") == 1, what="the Event on its way (answered in 2 s)")
        assert kube.events() == []
        (event,) = wait_until(kube.events, timeout=10, what="the Event, later")
        assert event["action"] == "DeletePod" and event["regarding"]["uid"] == UID
        wait_until(lambda: metric(port, "playbookd_events_total", result="ok") == 1, what="the Event counted")
        assert metric(port, "playbookd_events_total", result="failed") == 0
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


@pytest.mark.parametrize("status", [500, 403])
def test_a_failed_event_is_counted_and_logged_and_the_action_is_ok(kube, sa, nats, status):
    kube.add_fault(method="POST", path=EVENTS, status=status, times=None)
    pbd = Playbookd(config(sa, nats))
    try:
        pbd.wait_ready()
        port = int(pbd.wait_logged("http listening")[0]["port"])
        pub = NatsClient(nats.port)
        pub.publish(SUBJECT, alert())
        (action,) = pbd.wait_logged("action")
        assert action["outcome"] == "ok" and kube.pod("default", "web-0") is None
        (line,) = pbd.wait_logged("event not recorded")
        assert (line["object"], line["action"]) == ("web-0", "DeletePod")
        assert line["error"].startswith(f"HTTP {status} ("), line
        wait_until(lambda: metric(port, "playbookd_events_total", result="failed") > 0, what="the failure counted")
        assert metric(port, "playbookd_events_total", result="ok") == 0
        assert [r.status for r in kube.requests() if r.method == "POST"] == [status], "an Event is not retried"
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_full_queue_drops_events_and_a_stop_waits_a_bounded_time(kube, sa):
    """Dry run deletes the same pod again and again, fast, while every Event takes 3 s: the queue fills and
    the rest is dropped, counted and logged in a few lines; at exit the queue is given up after its drain
    time, and the Events are accounted for: sent, dropped when full, or dropped at shutdown."""
    kube.add_fault(method="POST", path=EVENTS, delay=3, times=None)
    n = 1200
    rc, out, err = run_playbookd(config(sa), "--dry-run", "--replay", "-", "--log-format", "json",
                                 input_bytes=("\n".join([alert()] * n) + "\n").encode())
    assert rc == 0, err[-3000:]
    assert out.count(": dry-run") == n
    lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    full = sum(int(l["count"]) for l in lines if l["msg"] == "event dropped: the queue is full")
    at_exit = sum(int(l["count"]) for l in lines if l["msg"] == "events dropped: not sent in time at shutdown")
    assert full > 0 and at_exit > 0
    assert len([l for l in lines if l["msg"] == "event dropped: the queue is full"]) < 10, "throttled"
    wait_until(lambda: kube.in_flight == 0, what="the last Events answered")
    sent = [r for r in kube.requests() if r.method == "POST"]
    assert all(r.query.get("dryRun") == ["All"] for r in sent)
    assert len(sent) + full + at_exit == n, "every Event sent or counted as dropped"
