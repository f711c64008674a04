"""test_ship.py: what running playbookd for real needs: falco-nats from a named pipe (writers that come
and go) into a real nats-server into playbookd; /healthz, /readyz and /metrics; SIGTERM during a burst;
SIGHUP with a broken config and with a good one."""

import json
import os
import re
import signal
import subprocess
import time

from harness import (FalcoNats, NatsClient, NatsServer, Playbookd, falco_subject, free_port, http_get,
                     sample_lines, wait_until)

SUBJECT = "falco.notice.terminal_shell_in_container"


def slack_config(nats_url, slack, extra="", topics='  "falco.>": [notify]'):
    return f"""
nats: {{servers: [{nats_url}]}}
retry: {{attempts: 2, initial_backoff_ms: 10}}
{extra}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}"}}
topics:
{topics}
"""


def test_falco_nats_from_a_pipe_whose_writer_comes_and_goes(nats, slack, tmp_path):
    pipe = str(tmp_path / "falco.pipe")
    os.mkfifo(pipe)
    pbd = Playbookd(slack_config(nats.url, slack))
    fwd = FalcoNats(nats.url, pipe)
    try:
        pbd.wait_ready()
        fwd.wait_logged("forwarding")
        lines = sample_lines()
        for line in lines:  # a new writer for every alert, as Falco restarting would be
            with open(pipe, "wb") as w:
                w.write(line + b"\n")
        with open(pipe, "wb") as w:  # several alerts and a bad line in one write
            w.write(b"not an alert\n" + lines[0] + b"\n" + lines[1] + b"\r\n")
        expected = len(lines) + 2
        wait_until(lambda: len(slack.received("/notify")) >= expected, timeout=20, what="every alert")
        wait_until(lambda: len(pbd.logged("action")) >= expected, what="every action logged")  # after its answer
        assert len(slack.received("/notify")) == expected
        subjects = [a["subject"] for a in pbd.logged("action")]
        assert sorted(subjects) == sorted([falco_subject(json.loads(l)) for l in lines + lines[:2]])
        skipped = fwd.logged("skipped a line that is not a Falco alert")
        assert len(skipped) == 1 and "invalid JSON" in skipped[0]["reason"]
    finally:
        fwd.proc.send_signal(signal.SIGTERM)
        assert fwd.stop() == 0
        assert fwd.logged("stopped")[0]["published"] == str(len(sample_lines()) + 2)
        fwd.cleanup()
        assert pbd.stop() == 0
        pbd.cleanup()


def test_falco_nats_buffers_while_nats_is_down_and_flushes_on_sigterm(slack, tmp_path):
    server = NatsServer(port=free_port(), start=False)
    pipe = str(tmp_path / "falco.pipe")
    os.mkfifo(pipe)
    fwd = FalcoNats(server.url, pipe)
    pbd = None
    try:
        fwd.wait_logged("nats not reachable yet, retrying in the background")
        server.start()
        pbd = Playbookd(slack_config(server.url, slack))
        pbd.wait_ready()
        fwd.wait_logged("nats connected", timeout=15)
        with open(pipe, "wb") as w:
            w.write(b"\n".join(sample_lines()[:5]) + b"\n")
        wait_until(lambda: len(slack.received("/notify")) == 5, what="five alerts")
        fwd.proc.send_signal(signal.SIGTERM)  # blocked in read() on the pipe: must still stop at once
        assert fwd.stop() == 0
    finally:
        fwd.cleanup()
        if pbd:
            pbd.stop()
            pbd.cleanup()
        server.stop()


def test_falco_nats_from_stdin(nats, slack):
    pbd = Playbookd(slack_config(nats.url, slack))
    try:
        pbd.wait_ready()
        data = b"\n".join(sample_lines()) + b"\n" + b"x" * (2 * 1024 * 1024) + b"\n" + sample_lines()[0] + b"\n"
        p = subprocess.run([FalcoNats.__init__.__globals__["FALCO_NATS"], "-s", nats.url, "-f", "-",
                            "--log-format", "json"], input=data, capture_output=True, timeout=30)
        assert p.returncode == 0
        logs = [json.loads(l) for l in p.stderr.splitlines()]
        assert [l["reason"] for l in logs if l["msg"].startswith("skipped")] == ["line longer than 1 MiB"]
        assert logs[-1]["msg"] == "stopped" and logs[-1]["published"] == str(len(sample_lines()) + 1)
        wait_until(lambda: len(slack.received("/notify")) == len(sample_lines()) + 1, what="all alerts")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_falco_nats_subject_template_publishes_on_the_given_subject(nats):
    """--subject-template FALCO (the original forwarder's single subject): every alert on FALCO, byte for byte."""
    client = NatsClient(nats.port)
    client.subscribe(">")
    client.flush()
    lines = sample_lines()
    binary = FalcoNats.__init__.__globals__["FALCO_NATS"]
    p = subprocess.run([binary, "-s", nats.url, "-f", "-", "--subject-template", "FALCO", "--log-format", "json"],
                       input=b"\n".join(lines) + b"\n", capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    got = [client.next_message() for _ in lines]
    assert [subject for subject, _, _ in got] == ["FALCO"] * len(lines)
    assert [payload for _, _, payload in got] == lines
    prefixed = subprocess.run([binary, "-s", nats.url, "-f", "-", "--subject-template", "sec.<priority>.<rule>"],
                              input=lines[0] + b"\n", capture_output=True, timeout=30)
    assert prefixed.returncode == 0
    assert client.next_message()[0] == "sec." + falco_subject(json.loads(lines[0]))[len("falco."):]
    bad = subprocess.run([binary, "-s", nats.url, "-f", "-", "--subject-template", "falco.*"], input=b"",
                         capture_output=True, timeout=30)
    assert bad.returncode == 2 and b"'*' is not allowed" in bad.stderr
    client.close()


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)$"
    for line in text.splitlines():
        m = re.match(pattern, line)
        if m:
            return float(m[1])
    return None


def test_health_readiness_and_metrics(slack):
    server = NatsServer(port=free_port(), start=False)
    pbd = Playbookd(slack_config(server.url, slack, extra="http: {listen: '127.0.0.1:0'}",
                                 topics=f'  "falco.*.*": [notify]\n  {SUBJECT}: [notify]'))
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        assert http_get(port, "/healthz") == (200, "ok\n")
        assert http_get(port, "/readyz")[0] == 503, "not ready before NATS is up"
        server.start()
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=15, what="ready")

        status, text = http_get(port, "/metrics")
        assert status == 200 and metric(text, "playbookd_alerts_received_total") == 0
        assert "# TYPE playbookd_action_duration_seconds histogram" in text

        slack.statuses["/notify"] = [200, 500, 500]
        pub = NatsClient(server.port)
        pub.publish(SUBJECT, sample_lines()[1])
        pub.publish(SUBJECT, sample_lines()[2])
        pub.publish(SUBJECT, b"not json")
        wait_until(lambda: len(pbd.logged("action")) == 2 and pbd.logged("rejected"), what="two actions")
        text = http_get(port, "/metrics")[1]
        assert metric(text, "playbookd_alerts_received_total") == 3
        assert metric(text, "playbookd_alerts_rejected_total") == 1
        assert metric(text, "playbookd_actions_total", playbook="notify", type="slack", outcome="ok") == 1
        assert metric(text, "playbookd_actions_total", playbook="notify", type="slack", outcome="failed") == 1
        assert metric(text, "playbookd_action_duration_seconds_count", playbook="notify", type="slack") == 2
        assert metric(text, "playbookd_action_duration_seconds_bucket", playbook="notify", type="slack",
                      le="+Inf") == 2
        assert metric(text, "playbookd_nats_connected") == 1

        server.kill()
        wait_until(lambda: http_get(port, "/readyz")[0] == 503, what="not ready while NATS is down")
        server.start()
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=15, what="ready again")
        assert metric(http_get(port, "/metrics")[1], "playbookd_nats_reconnects_total") == 1
        assert http_get(port, "/nope")[0] == 404
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
        server.stop()


def test_sigterm_during_a_burst_finishes_what_it_started(nats, slack):
    slack.delay = 0.05
    pbd = Playbookd(slack_config(nats.url, slack))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        for _ in range(4):
            for line in sample_lines():
                pub.publish(SUBJECT, line)
        wait_until(lambda: len(slack.received("/notify")) >= 5, what="the burst under way")
        pbd.proc.send_signal(signal.SIGTERM)
        assert pbd.stop() == 0
        actions = pbd.logged("action")
        # Every request Slack got belongs to an action that ran to its end and was logged, and vice versa.
        assert len(actions) == len(slack.received("/notify")) and all(a["outcome"] == "ok" for a in actions)
        assert pbd.logged("stopping: draining the input") and pbd.logged("stopped")
        pub.close()
    finally:
        pbd.cleanup()


def metric_lines(proc, msg):
    """The total of the counts in the throttled log lines msg."""
    return sum(int(line["count"]) for line in proc.logged(msg))


def test_at_the_drain_deadline_what_is_left_is_dropped_and_counted(nats, slack):
    slack.delay = 0.3
    slack.statuses["/notify"] = [500]  # every action would retry for long: stopping cuts the retries short
    pbd = Playbookd(slack_config(nats.url, slack, extra="shutdown_timeout_ms: 500\nworkers: 1").replace(
        "retry: {attempts: 2, initial_backoff_ms: 10}", "retry: {attempts: 10, initial_backoff_ms: 2000}"))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        for line in sample_lines()[:20]:
            pub.publish(SUBJECT, line)
        wait_until(lambda: len(slack.received("/notify")) >= 1, what="the first action under way")
        started = time.monotonic()
        pbd.proc.send_signal(signal.SIGTERM)
        assert pbd.stop() == 0
        assert time.monotonic() - started < 5, "the deadline and the stopped retries bound the stop"
        handled = len(pbd.logged("action"))
        dropped = pbd.logged("alerts dropped at the stop deadline")
        assert dropped and handled + int(dropped[0]["count"]) == 20, (handled, dropped)
        counted = metric_lines(pbd, "alerts dropped: playbookd is stopping")
        assert counted == int(dropped[0]["count"]), "each dropped alert is counted once"
        assert all(a["outcome"] == "failed (HTTP 500)" for a in pbd.logged("action"))
        pub.close()
    finally:
        pbd.cleanup()


def test_sighup_with_a_broken_config_keeps_the_old_one_and_a_good_one_replaces_it(nats, slack):
    pbd = Playbookd(slack_config(nats.url, slack))
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        with open(pbd.config, "w") as f:
            f.write("playbooks: {notify: {type: slack}}\ntopics: {")  # broken YAML
        pbd.proc.send_signal(signal.SIGHUP)
        failed = pbd.wait_logged("reload failed: the config is invalid; the old one keeps running")
        assert re.search(r"playbooks\.yaml:\d+:\d+: ", failed[0]["error"])
        pub.publish(SUBJECT, sample_lines()[1])
        wait_until(lambda: len(slack.received("/notify")) == 1, what="the old config still at work")

        with open(pbd.config, "w") as f:  # a good config: a second playbook
            f.write(slack_config(nats.url, slack).replace(
                '  "falco.>": [notify]', f'  "falco.>": [notify]\n  {SUBJECT}: [audit]').replace(
                "playbooks:\n", f"playbooks:\n  audit: {{type: slack, webhook_url: \"{slack.url('/audit')}\"}}\n"))
        pbd.proc.send_signal(signal.SIGHUP)
        pbd.wait_logged("config reloaded", playbooks="2", topics="2")
        pub.publish(SUBJECT, sample_lines()[2])
        wait_until(lambda: len(slack.received("/audit")) == 1, what="the new playbook")
        time.sleep(0.2)
        assert len(slack.received("/notify")) == 2, "one alert, one notify: no duplicate during the switch"
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
