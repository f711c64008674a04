"""test_jetstream.py: at-least-once through a JetStream durable pull consumer, against a real nats-server
(-js, file store kept across kill and start) and the fake Kubernetes API: playbookd killed with -9 and
started again, nats-server restarted, two replicas with one killed, a window of 500s ridden out by
redelivery, and the alerts that must not come back: invalid ones and permanent failures (Term), and
max_deliver exhaustion (logged and counted)."""

import json
import re
import signal
import time

import pytest

from harness import NatsClient, NatsServer, Playbookd, http_get, js_request, wait_until

SUBJECT = "falco.notice.terminal_shell_in_container"
STREAM = "FALCO"
DURABLE = "playbookd"


# -- the stream, through the JetStream API ------------------------------------------------------------

def create_stream(port):
    reply = js_request(port, f"$JS.API.STREAM.CREATE.{STREAM}",
                       {"name": STREAM, "subjects": ["falco.>"], "storage": "file", "max_age": 24 * 3600 * 10**9,
                        "retention": "limits", "discard": "old", "num_replicas": 1})
    assert "error" not in reply, reply


def stream_messages(port):
    return js_request(port, f"$JS.API.STREAM.INFO.{STREAM}")["state"]["messages"]


def consumer_info(port):
    return js_request(port, f"$JS.API.CONSUMER.INFO.{STREAM}.{DURABLE}")


def publish_alerts(port, bodies):
    """Publishes to the stream's subject with core NATS (stored by the stream); waits until all are stored."""
    before = stream_messages(port)
    client = NatsClient(port)
    try:
        for i in range(0, len(bodies), 200):
            client.publish_many([(SUBJECT, b) for b in bodies[i:i + 200]])
    finally:
        client.close()
    wait_until(lambda: stream_messages(port) == before + len(bodies), timeout=10, interval=0.1,
               what=f"{len(bodies)} alerts stored in the stream")


# -- the cluster and playbookd -------------------------------------------------------------------------

@pytest.fixture
def jsnats():
    server = NatsServer(jetstream=True)
    yield server
    server.stop()


def alert(pod, ns="default"):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod, "proc.cmdline": "sh -i"}
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}", "output_fields": fields})


def config(sa, nats, retry="{attempts: 2, initial_backoff_ms: 50, max_backoff_ms: 1000}", max_deliver=10,
           ack_wait="2s", backoff="[200ms, 500ms]", workers=8, queue_size=64, extra=""):
    return f"""
nats:
  servers: [{nats.url}]
  jetstream:
    stream: {STREAM}
    durable: {DURABLE}
    create_stream: {{subjects: ["falco.>"], max_age: 24h, storage: file}}
    max_deliver: {max_deliver}
    ack_wait: {ack_wait}
    backoff: {backoff}
kubernetes:
  service_account_dir: {sa}
retry: {retry}
workers: {workers}
queue_size: {queue_size}
shutdown_timeout_ms: 2000
playbooks:
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
  {SUBJECT}: [kill]
{extra}"""


def deletes(kube):
    return [r for r in kube.requests() if r.method == "DELETE"]


def deleted_pods(kube):
    return {r.path.rsplit("/", 1)[1] for r in deletes(kube) if r.status in (200, 404)}


def add_pods(kube, names):
    for name in names:
        kube.add_pod("default", name)


def start(text):
    pbd = Playbookd(text)
    pbd.wait_ready()
    return pbd


def kill9(pbd):
    pbd.proc.send_signal(signal.SIGKILL)
    pbd.proc.wait(timeout=10)
    log = open(pbd.log_path, errors="replace").read()
    assert "Sanitizer" not in log, log[-20000:]  # what stop() would have caught by the exit status


def all_gone(kube, names):
    return all(kube.pod("default", n) is None for n in names)


def remaining(kube, names):
    return [n for n in names if kube.pod("default", n) is not None]


# -- the tests -------------------------------------------------------------------------------------------

def test_kill_9_mid_run_then_restart_acts_on_every_alert_once_needed(kube, incluster, jsnats):
    targets = [f"pod-{i:04d}" for i in range(1000)]
    spares = [f"spare-{i}" for i in range(20)]
    add_pods(kube, targets + spares)
    create_stream(jsnats.port)
    publish_alerts(jsnats.port, [alert(p) for p in targets])
    text = config(incluster, jsnats)

    first = start(text)
    wait_until(lambda: len(deletes(kube)) >= 300, timeout=30, interval=0.05, what="300 DELETEs")
    kill9(first)
    done_before = len(deleted_pods(kube))
    assert done_before < 1000, "killed mid-run"

    second = start(text)
    try:
        wait_until(lambda: all_gone(kube, targets), timeout=30, interval=0.2,
                   what=f"every pod deleted (left: {remaining(kube, targets)[:5]})")
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert acked")
        assert all(kube.pod("default", s) is not None for s in spares), "no alert, no action"
        assert deleted_pods(kube) <= set(targets)
        info = consumer_info(jsnats.port)
        assert info["num_pending"] == 0 and info["delivered"]["stream_seq"] >= 1000
        outcomes = {a["outcome"] for a in second.logged("action")}
        assert outcomes <= {"ok"}, outcomes
    finally:
        assert second.stop() == 0
        second.cleanup()


def test_nats_server_restarted_mid_run_loses_no_alert(kube, incluster, jsnats):
    targets = [f"pod-{i:03d}" for i in range(300)]
    add_pods(kube, targets)
    create_stream(jsnats.port)
    publish_alerts(jsnats.port, [alert(p) for p in targets])
    pbd = start(config(incluster, jsnats, workers=4, queue_size=16))
    try:
        wait_until(lambda: len(deletes(kube)) >= 50, timeout=20, interval=0.02, what="50 DELETEs")
        jsnats.kill()
        time.sleep(0.5)
        jsnats.start()
        wait_until(lambda: all_gone(kube, targets), timeout=30, interval=0.2,
                   what=f"every pod deleted (left: {remaining(kube, targets)[:5]})")
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert acked")
        assert not [a for a in pbd.logged("action") if a["outcome"] != "ok"]
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_two_replicas_share_the_work_and_survive_one_killed(kube, incluster, jsnats):
    targets = [f"pod-{i:03d}" for i in range(400)]
    add_pods(kube, targets)
    create_stream(jsnats.port)
    text = config(incluster, jsnats, workers=2, queue_size=4)
    a = start(text)
    b = start(text)
    try:
        publish_alerts(jsnats.port, [alert(p) for p in targets])
        wait_until(lambda: len(deletes(kube)) >= 120, timeout=20, interval=0.02, what="120 DELETEs")
        a_did, b_did = len(a.logged("action")), len(b.logged("action"))
        kill9(a)
        assert a_did > 0 and b_did > 0, (a_did, b_did)
        wait_until(lambda: all_gone(kube, targets), timeout=30, interval=0.2,
                   what=f"every pod deleted (left: {remaining(kube, targets)[:5]})")
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert acked")
    finally:
        assert b.stop() == 0
        b.cleanup()


def test_a_window_of_500s_is_ridden_out_by_redelivery(kube, incluster, jsnats):
    targets = [f"pod-{i:02d}" for i in range(20)]
    add_pods(kube, targets)
    kube.add_fault(method="DELETE", status=500, for_seconds=10)
    pbd = start(config(incluster, jsnats, max_deliver=40, backoff="[500ms, 1s]"))
    try:
        publish_alerts(jsnats.port, [alert(p) for p in targets])
        started = time.monotonic()
        time.sleep(9.5)
        assert not [a for a in pbd.logged("action") if a["outcome"] == "ok"], "nothing succeeded under the 500s"
        wait_until(lambda: all_gone(kube, targets), timeout=15, interval=0.1,
                   what=f"every pod deleted (left: {remaining(kube, targets)[:5]})")
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert acked")
        failed = [a for a in pbd.logged("action") if a["outcome"].startswith("failed")]
        assert len(failed) >= 2 * len(targets), "redelivered within the window"
        ok = {a["target"] for a in pbd.logged("action") if a["outcome"] == "ok"}
        assert ok == {f"pod default/{p}" for p in targets}
        assert not pbd.logged("alert dropped after N deliveries")
        assert not pbd.logged("alert terminated: it will not be delivered again")
        assert time.monotonic() - started < 25
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def metric(port, name):
    status, body = http_get(port, "/metrics")
    assert status == 200
    match = re.search(r"^" + re.escape(name) + r" (\d+)$", body, re.M)
    return int(match.group(1)) if match else None


def test_invalid_and_permanent_failures_are_termed_and_max_deliver_is_counted(kube, incluster, jsnats):
    add_pods(kube, ["forbidden-0", "flaky-0", "fine-0"])
    kube.add_fault(method="DELETE", path="/pods/forbidden-0$", status=403, times=None)
    kube.add_fault(method="DELETE", path="/pods/flaky-0$", status=500, times=None)
    pbd = start(config(incluster, jsnats, max_deliver=3, backoff="[100ms]",
                       retry="{attempts: 1, initial_backoff_ms: 10}", extra='http: {listen: "127.0.0.1:0"}'))
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        publish_alerts(jsnats.port, [b"this is not json", alert("forbidden-0"), alert("flaky-0"), alert("fine-0")])
        dropped = pbd.wait_logged("alert dropped after N deliveries", timeout=15)
        assert dropped[0]["subject"] == SUBJECT and dropped[0]["deliveries"] == "3"
        assert metric(port, 'playbookd_alerts_dropped_total{reason="max_deliver"}') == 1
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert settled")
        time.sleep(2.5)  # longer than ack_wait: whatever was not settled would come back now
        terminated = pbd.logged("alert terminated: it will not be delivered again")
        assert sorted(t["reason"] for t in terminated) == ["a playbook failed for good", "not a valid alert"]
        assert len(pbd.logged("rejected")) == 1, "the invalid alert was delivered once"
        forbidden = [r for r in deletes(kube) if r.path.endswith("/forbidden-0")]
        assert len(forbidden) == 1, "a permanent failure is not delivered again"
        failed = [a for a in pbd.logged("action") if a["target"] == "pod default/forbidden-0"]
        assert len(failed) == 1 and failed[0]["outcome"].startswith("failed (") and "403" in failed[0]["outcome"]
        flaky = [r for r in deletes(kube) if r.path.endswith("/flaky-0")]
        assert len(flaky) == 3, "one try per delivery, max_deliver deliveries"
        assert kube.pod("default", "fine-0") is None
        info = consumer_info(jsnats.port)
        assert info["num_ack_pending"] == 0 and info["num_pending"] == 0, info
        assert len(dropped := pbd.logged("alert dropped after N deliveries")) == 1, dropped
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_restart_with_new_consumer_settings_updates_the_durable_consumer(kube, incluster, jsnats):
    add_pods(kube, ["pod-a", "pod-b"])
    first = start(config(incluster, jsnats))
    publish_alerts(jsnats.port, [alert("pod-a")])
    wait_until(lambda: kube.pod("default", "pod-a") is None, what="pod-a deleted")
    assert first.stop() == 0
    first.cleanup()
    second = start(config(incluster, jsnats, ack_wait="5s", max_deliver=7))
    try:
        assert second.logged("jetstream consumer updated to the config")
        cfg = consumer_info(jsnats.port)["config"]
        assert cfg["ack_wait"] == 5 * 10**9 and cfg["max_deliver"] == 7 and cfg["filter_subject"] == "falco.>"
        assert "backoff" not in cfg, "BackOff would replace ack_wait"
        publish_alerts(jsnats.port, [alert("pod-b")])
        wait_until(lambda: kube.pod("default", "pod-b") is None, what="pod-b deleted")
    finally:
        assert second.stop() == 0
        second.cleanup()


def test_started_before_nats_server_binds_once_it_answers(kube, incluster):
    server = NatsServer(jetstream=True, start=False)
    try:
        add_pods(kube, ["pod-late"])
        pbd = Playbookd(config(incluster, server))
        try:
            pbd.wait_logged("jetstream: nats is not connected yet: the consumer is bound once it is")
            assert pbd.proc.poll() is None
            server.start()
            pbd.wait_logged("subscribed", timeout=15)
            publish_alerts(server.port, [alert("pod-late")])
            wait_until(lambda: kube.pod("default", "pod-late") is None, what="pod-late deleted")
        finally:
            assert pbd.stop() == 0
            pbd.cleanup()
    finally:
        server.stop()


def test_a_backlog_slower_than_ack_wait_is_not_redelivered(kube, incluster, jsnats):
    """One worker, a 300 ms API and 20 alerts: 6 s of work against a 2 s ack_wait. Only what the workers can
    take is fetched, so no alert waits out its ack_wait in the queue and none is delivered twice."""
    targets = [f"pod-{i:02d}" for i in range(20)]
    add_pods(kube, targets)
    kube.add_fault(method="DELETE", delay=0.3, times=None)
    pbd = start(config(incluster, jsnats, workers=1, queue_size=4096))
    try:
        publish_alerts(jsnats.port, [alert(p) for p in targets])
        wait_until(lambda: all_gone(kube, targets), timeout=30, interval=0.2, what="every pod deleted")
        wait_until(lambda: consumer_info(jsnats.port)["num_ack_pending"] == 0, timeout=10, interval=0.2,
                   what="every alert acked")
        assert len(deletes(kube)) == len(targets), "one DELETE per alert"
        delivered = consumer_info(jsnats.port)["delivered"]
        assert delivered["consumer_seq"] == delivered["stream_seq"] == len(targets), "each delivered once"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
