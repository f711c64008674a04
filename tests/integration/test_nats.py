"""test_nats.py: playbookd subscribed to a real nats-server: every sample alert published on its derived
subject reaches the mapped Slack playbooks exactly once each, escaped; bad input is logged, counted and
survived."""

import json
from collections import Counter

from harness import NatsClient, Playbookd, falco_subject, sample_lines, wait_until

TERMINAL_SHELL = "falco.notice.terminal_shell_in_container"


def config(nats, slack):
    return f"""
nats:
  servers: [{nats.url}]
retry: {{attempts: 2, initial_backoff_ms: 10}}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}", channel: "#alerts"}}
  audit:  {{type: slack, webhook_url: "{slack.url('/audit')}", username: auditor}}
topics:
  "falco.*.*": [notify]
  {TERMINAL_SHELL}: [notify, audit]
"""


def field(message, title):
    for f in message["attachments"][0]["fields"]:
        if f["title"] == title:
            return f["value"]
    return None


def slack_escaped(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def start(nats, slack):
    pbd = Playbookd(config(nats, slack))
    pbd.wait_ready()
    return pbd


def test_sample_alerts_reach_each_mapped_playbook_once(nats, slack):
    pbd = start(nats, slack)
    try:
        alerts = [json.loads(line) for line in sample_lines()]
        pub = NatsClient(nats.port)
        for raw, alert in zip(sample_lines(), alerts):
            pub.publish(falco_subject(alert), raw)
        shells = [a for a in alerts if falco_subject(a) == TERMINAL_SHELL]
        assert len(shells) == 5  # the Notice ones; the Critical one goes to falco.critical.*

        wait_until(lambda: len(slack.received("/notify")) >= len(alerts) and
                   len(slack.received("/audit")) >= len(shells), what="all Slack posts")
        pub.flush()
        wait_until(lambda: len(pbd.logged("action")) >= len(alerts) + len(shells), what="action logs")

        notify, audit = slack.received("/notify"), slack.received("/audit")
        assert len(notify) == len(alerts), "one notify post per alert, even when two patterns match"
        assert len(audit) == len(shells)
        assert Counter(field(m, "Rule") for m in notify) == Counter(slack_escaped(a["rule"]) for a in alerts)
        assert {field(m, "Pod") for m in audit} == {a["output_fields"]["k8s.pod.name"] for a in shells}
        assert all(m["channel"] == "#alerts" and m["username"] == "playbookd" for m in notify)
        assert all(m["username"] == "auditor" and "channel" not in m for m in audit)

        first = next(m for m in notify if field(m, "Hostname") == "falco-xczjd")
        assert field(first, "Priority") == "Critical"
        assert field(first, "Namespace") == "default" and field(first, "Pod") == "kubecon"
        assert field(first, "Container") == "ee97d9c4186f"
        assert field(first, "Time") == "2023-05-25T13:44:05.478445995Z"
        assert first["attachments"][0]["color"] == "#ff9000"
        assert first["attachments"][0]["text"] == alerts[0]["output"]  # no <, >, & in it

        # The gRPC rendering: numeric priority 4 is Warning, {seconds, nanos} time rendered as RFC 3339.
        grpc = [m for m in notify if field(m, "Time") == "2019-10-03T09:20:49.620298462Z"]
        assert len(grpc) == 1 and field(grpc[0], "Priority") == "Warning"

        # Text with < > & (line 9 output has "<NA>", line 28 rule has none but output has "&"-free JSON).
        na = [m for m in notify if "&lt;NA&gt;" in m["attachments"][0]["text"]]
        assert na and all("<NA>" not in m["attachments"][0]["text"] for m in notify)

        actions = pbd.logged("action")
        assert all(a["outcome"] == "ok" for a in actions)
        assert Counter(a["playbook"] for a in actions) == {"notify": len(alerts), "audit": len(shells)}
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_attacker_text_cannot_mention_or_link(nats, slack):
    pbd = start(nats, slack)
    try:
        evil = {
            "rule": "Terminal shell in container",
            "priority": "Notice",
            "time": "2026-11-23T00:00:00Z",
            "output": "shell cmdline=echo <!channel> <!here> <https://evil.example|click me> & <@U123>",
            "output_fields": {"k8s.ns.name": "default", "k8s.pod.name": "<!everyone>", "container.id": None,
                              "proc.tty": 34816, "evt.is_ok": True},
        }
        pub = NatsClient(nats.port)
        pub.publish(TERMINAL_SHELL, json.dumps(evil))
        wait_until(lambda: len(slack.received("/notify")) == 1 and len(slack.received("/audit")) == 1,
                   what="posts")
        for path in ("/notify", "/audit"):
            body = json.dumps(slack.received(path)[0], ensure_ascii=False)
            assert "<" not in body and ">" not in body, body
            msg = slack.received(path)[0]
            assert msg["attachments"][0]["text"] == slack_escaped(evil["output"])
            assert field(msg, "Pod") == "&lt;!everyone&gt;"
            assert field(msg, "Container") is None  # null container.id: no field, no crash
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


BAD_INPUTS = [
    ("not json", b"this is not json", "invalid JSON"),
    ("missing rule", json.dumps({"priority": "Notice", "output": "x"}).encode(), "missing rule"),
    ("missing priority", json.dumps({"rule": "Terminal shell in container"}).encode(), "missing priority"),
    ("unknown priority", json.dumps({"rule": "R", "priority": "Severe"}).encode(), 'unknown priority "Severe"'),
    ("too large", b'{"rule":"R","priority":"Notice","output":"' + b"A" * (1024 * 1024 + 10) + b'"}',
     "message too large"),
    ("invalid UTF-8", b'{"rule":"R\xff\xfe","priority":"Notice"}', "invalid UTF-8"),
    ("top-level array", b'[{"rule":"R","priority":"Notice"}]', "not a JSON object but an array"),
    ("null output_fields", b'{"rule":"R","priority":"Notice","output_fields":null}',
     "output_fields is null, not an object"),
    ("numeric output_fields", b'{"rule":"R","priority":"Notice","output_fields":42}',
     "output_fields is a number, not an object"),
    ("deep nesting", b'{"rule":"R","priority":"Notice","x":' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid JSON"),
    ("empty", b"", "empty message"),
]


def test_bad_input_is_logged_counted_and_survived(nats, slack):
    pbd = start(nats, slack)
    try:
        pub = NatsClient(nats.port)
        for _, payload, _ in BAD_INPUTS:
            pub.publish(TERMINAL_SHELL, payload)
        wait_until(lambda: len(pbd.logged("rejected")) >= len(BAD_INPUTS), what="rejections")
        rejected = pbd.logged("rejected")
        assert len(rejected) == len(BAD_INPUTS)
        for (name, _, reason), line in zip(BAD_INPUTS, sorted(rejected, key=lambda l: int(l["rejected_total"]))):
            assert line["subject"] == TERMINAL_SHELL, name
            assert reason in line["reason"], (name, line["reason"])
        assert sorted(int(l["rejected_total"]) for l in rejected) == list(range(1, len(BAD_INPUTS) + 1))
        assert slack.received("/notify") == [] and slack.received("/audit") == []

        good = sample_lines()[1]
        pub.publish(TERMINAL_SHELL, good)
        wait_until(lambda: len(slack.received("/notify")) == 1 and len(slack.received("/audit")) == 1,
                   what="the good alert after the bad ones")
        assert pbd.proc.poll() is None
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_failing_webhook_is_retried_then_failed_and_next_alert_goes_on(nats, slack):
    slack.statuses["/audit"] = [500]  # forever
    slack.statuses["/notify"] = [429, 200]  # once, then fine
    pbd = start(nats, slack)
    try:
        pub = NatsClient(nats.port)
        pub.publish(TERMINAL_SHELL, sample_lines()[1])
        wait_until(lambda: len(pbd.logged("action")) == 2, what="two actions")
        by_playbook = {a["playbook"]: a for a in pbd.logged("action")}
        assert by_playbook["notify"]["outcome"] == "ok" and by_playbook["notify"]["attempts"] == "2"
        assert by_playbook["audit"]["outcome"] == "failed (HTTP 500)"
        assert by_playbook["audit"]["attempts"] == "2" and len(slack.received("/audit")) == 2
        assert by_playbook["audit"]["level"] == "warn"

        slack.statuses["/audit"] = [200]
        pub.publish(TERMINAL_SHELL, sample_lines()[2])
        wait_until(lambda: len(pbd.logged("action")) == 4, what="the next alert")
        assert [a["outcome"] for a in pbd.logged("action")[2:]] == ["ok", "ok"]
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_webhook_url_never_logged(nats, slack):
    pbd = start(nats, slack)
    try:
        pub = NatsClient(nats.port)
        pub.publish(TERMINAL_SHELL, sample_lines()[1])
        wait_until(lambda: len(pbd.logged("action")) == 2, what="actions")
        pub.close()
    finally:
        pbd.stop()
        text = open(pbd.log_path).read()
        pbd.cleanup()
    assert "/notify" not in text and "/audit" not in text and str(slack.port) not in text
