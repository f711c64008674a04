"""test_workers.py: the worker pool, bounded and ordered, through a real nats-server and the fake API server:
many requests in flight, one target's alerts in order, a noisy pattern that cannot hold back a delete, a
storm turned into one action by cooldown, a flood held within the pending limits with its drops counted,
a reload during a backlog that loses nothing, playbooks that can run twice for one alert, and threads named by
their work."""

import json
import os
import signal
import time


from harness import RELEASE_PLAYBOOKD, NatsClient, Playbookd, http_get, run_playbookd, wait_until

SHELL = "falco.notice.terminal_shell_in_container"
NOISE = "falco.warning.read_sensitive_file_untrusted"


def alert(pod, ns="default", rule="Terminal shell in container", priority="Notice", n=0):
    return json.dumps({"rule": rule, "priority": priority, "time": f"2026-11-23T03:00:{n % 60:02d}.{n:09d}Z",
                       "hostname": "node-1", "source": "syscall", "output": f"A shell was spawned in {ns}/{pod}",
                       "output_fields": {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod,
                                         "proc.cmdline": "sh -i"}})


def config(nats, sa, playbooks, topics, extra=""):
    return f"""
nats: {{servers: [{nats.url}]}}
kubernetes: {{service_account_dir: {sa}}}
retry: {{attempts: 2, initial_backoff_ms: 10}}
playbooks:
{playbooks}
topics:
{topics}
{extra}"""


def started(text, **kw):
    pbd = Playbookd(text, **kw)
    pbd.wait_ready()
    return pbd


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {name}")


def test_alerts_about_one_pod_are_acted_on_in_order(kube, incluster, nats):
    """isolate-pod then delete-pod for each of 20 pods; the isolation's POST is slow. Were the two alerts of
    a pod run on two workers, the DELETE would overtake the isolation and its label PATCH would find no pod."""
    pods = [f"web-{i}" for i in range(20)]
    for pod in pods:
        kube.add_pod("default", pod, node="node-1")
    kube.add_fault(method="POST", path="/networkpolicies$", delay=0.3, times=None)
    pbd = started(config(nats, incluster, "  cut-off: {type: isolate-pod}\n  kill: {type: delete-pod}",
                         f"  {SHELL}: [cut-off]\n  falco.critical.*: [kill]"))
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert(p, n=i)) for i, p in enumerate(pods)] +
                         [("falco.critical.drop_and_execute", alert(p, rule="Drop and execute", n=i))
                          for i, p in enumerate(pods)])
        wait_until(lambda: len(pbd.logged("action")) == 40, timeout=30, what="40 actions")
        assert all(a["outcome"] == "ok" for a in pbd.logged("action")), [(a["playbook"], a["outcome"]) for a in pbd.logged("action") if a["outcome"] != "ok"]
        for pod in pods:
            mine = [r.method for r in kube.requests() if r.path.endswith(f"/pods/{pod}")]
            assert mine == ["PATCH", "DELETE"], (pod, mine)
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_noisy_pattern_does_not_hold_back_a_delete(kube, incluster, nats, slack):
    """3,000 Slack-only alerts against a 100 ms webhook take 32 workers about ten seconds; a shell alert
    published after them is still acted on at once, not after the burst."""
    kube.add_pod("prod", "victim", node="node-1")
    slack.delay = 0.1
    pbd = started(config(nats, incluster, f"  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}\n"
                                          "  kill: {type: delete-pod, grace_period_seconds: 0}",
                         f"  falco.*.*: [notify]\n  {SHELL}: [kill]"))
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(NOISE, alert(f"noisy-{i % 500}", ns="batch", rule="Read sensitive file untrusted",
                                        priority="Warning", n=i)) for i in range(3000)])
        sent = time.monotonic()
        pub.publish(SHELL, alert("victim", ns="prod"))
        wait_until(lambda: kube.pod("prod", "victim") is None, timeout=60, what="the victim deleted")
        waited = time.monotonic() - sent
        still_noisy = 3000 - len(slack.received("/n"))
        assert still_noisy > 1000, "the test is meaningful only while the burst is still being worked off"
        assert waited < 3, f"the delete waited {waited:.1f}s behind Slack-only alerts"
    finally:
        pbd.proc.send_signal(signal.SIGKILL)
        pbd.stop()
        pbd.cleanup()


def test_a_storm_becomes_one_action_with_cooldown(kube, incluster, nats, slack):
    kube.add_pod("default", "web-0", node="node-1")
    pbd = started(config(nats, incluster,
                         f"  notify: {{type: slack, webhook_url: '{slack.url('/n')}', cooldown: 60s}}\n"
                         "  kill: {type: delete-pod, grace_period_seconds: 0, cooldown: 60s}",
                         f"  {SHELL}: [kill, notify]", extra="http: {listen: '127.0.0.1:0'}"))
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert("web-0"))] * 10000)
        text = wait_until(lambda: (t := http_get(port, "/metrics")[1]) and
                          metric(t, "playbookd_cooldown_skipped_total") >= 19998 and t, timeout=60,
                          what="every alert handled")
        assert metric(text, "playbookd_cooldown_skipped_total") == 19998
        assert [r.method for r in kube.requests() if r.method == "DELETE"] == ["DELETE"]
        assert len(slack.received("/n")) == 1
        assert pbd.logged("actions skipped by cooldown"), "the skips are logged, at most once a second"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_the_first_message_after_the_cooldown_says_how_many_were_suppressed(nats, slack):
    pbd = started(f"""
nats: {{servers: [{nats.url}]}}
playbooks:
  notify: {{type: slack, webhook_url: '{slack.url('/n')}', cooldown: 1s}}
topics:
  {SHELL}: [notify]
""")
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert("web-0"))] * 50)
        wait_until(lambda: len(pbd.logged("action")) >= 1, what="the first post")
        time.sleep(1.2)
        pub.publish(SHELL, alert("web-0"))
        wait_until(lambda: len(slack.received("/n")) == 2, what="the post after the window")
        first, second = slack.received("/n")
        fields = {f["title"]: f["value"] for f in second["attachments"][0]["fields"]}
        assert "Suppressed" not in {f["title"] for f in first["attachments"][0]["fields"]}
        assert fields["Suppressed"].startswith("49 similar alerts not posted"), fields
        pub.publish(SHELL, alert("web-1"))  # another pod: its own key, not held by web-0's window
        wait_until(lambda: len(slack.received("/n")) == 3, what="a post for another pod")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_flood_stays_within_the_pending_limits_and_drops_are_counted(kube, incluster, nats):
    """100,000 alerts against an API answering in 200 ms: what does not fit in the pending limits is
    dropped, counted in /metrics and logged; memory stays bounded (release build, for a true figure)."""
    kube.add_fault(method="DELETE", delay=0.2, times=None)
    binary = RELEASE_PLAYBOOKD if os.path.exists(RELEASE_PLAYBOOKD) else None
    pbd = started(config(nats, incluster, "  kill: {type: delete-pod}", f"  {SHELL}: [kill]",
                         extra="http: {listen: '127.0.0.1:0'}\nqueue_size: 1024\n"
                               "nats: {servers: [" + nats.url + "], pending: {messages: 5000, bytes: 8MiB}}")
                  .replace(f"nats: {{servers: [{nats.url}]}}\n", "", 1), binary=binary)
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        pub = NatsClient(nats.port)
        pub.publish_many(((SHELL, alert(f"pod-{i}", n=i)) for i in range(100000)), batch=2000)
        text = wait_until(lambda: (t := http_get(port, "/metrics")[1]) and
                          metric(t, 'playbookd_alerts_dropped_total{reason="slow_consumer"}') > 0 and t,
                          timeout=30, what="slow-consumer drops in /metrics")
        wait_until(lambda: pbd.logged("alerts dropped: slow consumer (the pending limits were reached)"),
                   what="the drops logged")
        time.sleep(1)  # cnats has read the whole flood by now: the pending limits are full
        rss_mib = pbd.peak_rss_kib() / 1024
        print(f"flood: peak RSS {rss_mib:.1f} MiB ({'release' if binary else 'sanitized'} build), "
              f"received {metric(text, 'playbookd_alerts_received_total'):.0f}")
        if binary:
            assert rss_mib < 64, f"peak RSS {rss_mib:.1f} MiB: more than the Deployment's memory limit"
        logged = sum(int(line["count"]) for line in
                     pbd.logged("alerts dropped: slow consumer (the pending limits were reached)"))
        assert 0 < logged <= metric(http_get(port, "/metrics")[1],
                                    'playbookd_alerts_dropped_total{reason="slow_consumer"}')
    finally:
        pbd.proc.send_signal(signal.SIGKILL)
        pbd.stop()
        pbd.cleanup()


def test_sighup_during_a_backlog_loses_nothing(nats, slack):
    slack.delay = 0.05
    text = f"""
nats: {{servers: [{nats.url}]}}
workers: 2
playbooks:
  notify: {{type: slack, webhook_url: '{slack.url('/n')}'}}
topics:
  {SHELL}: [notify]
"""
    pbd = started(text)
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert(f"pod-{i}", n=i)) for i in range(200)])
        wait_until(lambda: len(slack.received("/n")) >= 10, what="the backlog under way")
        with open(pbd.config, "w") as f:
            f.write(text.replace("/n'}", "/n', username: reloaded}"))
        pbd.proc.send_signal(signal.SIGHUP)
        pbd.wait_logged("config reloaded")
        pub.publish_many([(SHELL, alert(f"after-{i}", n=i)) for i in range(20)])
        wait_until(lambda: len(slack.received("/n")) >= 220, timeout=60, what="every alert posted")
        time.sleep(0.3)
        posted = [m["attachments"][0]["fields"] for m in slack.received("/n")]
        pods = sorted(next(f["value"] for f in fields if f["title"] == "Pod") for fields in posted)
        assert pods == sorted([f"pod-{i}" for i in range(200)] + [f"after-{i}" for i in range(20)])
        assert not pbd.logged("alerts dropped: playbookd is stopping")
        assert any(m["username"] == "reloaded" for m in slack.received("/n")), "the new config took over"
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_every_cluster_playbook_can_run_twice_for_one_alert(kube, incluster, tmp_path):
    """At-least-once means a redelivered alert runs again: the second run leaves the same state, ok."""
    kube.add_pod("default", "web-0", node="node-1")
    crit = alert("web-0", rule="Drop and execute", priority="Critical")
    path = tmp_path / "alerts.jsonl"
    path.write_text("\n".join([alert("web-0"), alert("web-0"), crit, crit]) + "\n")
    text = f"""
kubernetes: {{service_account_dir: {incluster}}}
playbooks:
  cut-off: {{type: isolate-pod}}
  fence: {{type: taint-node}}
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
  {SHELL}: [cut-off, fence]
  falco.critical.drop_and_execute: [kill]
"""
    rc, out, err = run_playbookd(text, "--replay", str(path))
    assert rc == 0, err
    kill = "falco.critical.drop_and_execute -> kill"
    shell, drop = f' via topic "{SHELL}"', ' via topic "falco.critical.drop_and_execute"'
    assert out.splitlines() == [f"line 1: {SHELL} -> cut-off: ok{shell}", f"line 1: {SHELL} -> fence: ok{shell}",
                                f"line 2: {SHELL} -> cut-off: ok{shell}", f"line 2: {SHELL} -> fence: ok{shell}",
                                f"line 3: {kill}: ok{drop}", f"line 4: {kill}: ok{drop}"]
    taints = [t for t in kube.node("node-1")["spec"]["taints"] if t["key"] == "falco/alert"]
    assert len(taints) == 1, "one taint, not two"
    assert kube.pod("default", "web-0") is None
    patches = [r for r in kube.requests() if r.method == "PATCH" and "/nodes/" in r.path]
    assert len(patches) == 1, "the second run saw the taint and wrote nothing"


def test_workers_keep_many_requests_in_flight(kube, incluster, nats):
    """64 alerts for 64 pods against an API answering DELETE in 200 ms: the fake sees at least 16 at once."""
    pods = [f"pod-{i}" for i in range(64)]
    for pod in pods:
        kube.add_pod("default", pod, node="node-1")
    kube.add_fault(method="DELETE", delay=0.2, times=None)
    pbd = started(config(nats, incluster, "  kill: {type: delete-pod}", f"  {SHELL}: [kill]"))
    try:
        pub = NatsClient(nats.port)
        pub.publish_many([(SHELL, alert(p, n=i)) for i, p in enumerate(pods)])
        wait_until(lambda: len(pbd.logged("action")) == 64, timeout=30, what="64 actions")
        assert all(a["outcome"] == "ok" for a in pbd.logged("action"))
        assert all(kube.pod("default", p) is None for p in pods)
        assert kube.max_in_flight_for("DELETE") >= 16, kube.max_in_flight_for("DELETE")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_threads_are_named_by_their_work(kube, incluster, nats):
    """The workers and the Event senders are named (pb-worker, pb-events), so /proc/PID/task, top -H and
    the bench (run-queue wait of the workers) tell them apart from cnats's threads."""
    pbd = started(config(nats, incluster, "  kill: {type: delete-pod}", f"  {SHELL}: [kill]", "workers: 6"))
    try:
        tasks = f"/proc/{pbd.proc.pid}/task"
        names = [open(f"{tasks}/{tid}/comm").read().strip() for tid in os.listdir(tasks)]
        assert names.count("pb-worker") == 6, names
        assert names.count("pb-events") >= 1, names
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
