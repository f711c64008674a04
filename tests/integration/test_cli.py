"""test_cli.py: the command line without NATS: --replay (result lines, exit status, stdin, bad lines),
--check (exit status, file:line:column errors), --print-rbac (the ClusterRole of the used playbooks),
--version and usage errors."""

import json
import os
import re
import subprocess

from harness import PLAYBOOKD, falco_subject, run_playbookd, sample_lines, split_via

TERMINAL_SHELL = "falco.notice.terminal_shell_in_container"


def config(slack, extra=""):
    return f"""
retry: {{attempts: 3, initial_backoff_ms: 5, max_backoff_ms: 20}}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}"}}
  audit:  {{type: slack, webhook_url: "{slack.url('/audit')}", min_priority: Warning}}
topics:
  "falco.*.*": [notify]
  {TERMINAL_SHELL}: [audit, notify]
  "falco.critical.>": [audit]
{extra}"""


LINE = re.compile(r"^line (\d+): (\S+) -> (\S+): (.+)$")


def results(stdout):
    """(line, subject, playbook, outcome, the topic that brought it) per result line."""
    out = []
    for line in stdout.splitlines():
        head, kind, via = split_via(line)
        m = LINE.match(head)
        assert m and kind == "topic", f"not a result line: {line!r}"
        out.append((int(m[1]), m[2], m[3], m[4], via))
    return out


def test_replay_prints_one_line_per_action_and_exits_0(slack, tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"\n".join(sample_lines()) + b"\n")
    rc, out, err = run_playbookd(config(slack), "--replay", str(path))
    assert rc == 0, err
    alerts = [json.loads(l) for l in sample_lines()]
    expected = []
    for n, a in enumerate(alerts, 1):
        subject = falco_subject(a)
        if subject == TERMINAL_SHELL:
            expected += [(n, subject, "notify", "ok", "falco.*.*"),  # topics in config order, each playbook once
                         (n, subject, "audit", "skipped (priority Notice below min_priority Warning)", TERMINAL_SHELL)]
        elif subject.startswith("falco.critical."):
            expected += [(n, subject, "notify", "ok", "falco.*.*"), (n, subject, "audit", "ok", "falco.critical.>")]
        else:
            expected.append((n, subject, "notify", "ok", "falco.*.*"))
    assert results(out) == expected
    assert len(slack.received("/notify")) == len(alerts)
    assert len(slack.received("/audit")) == sum(1 for a in alerts if falco_subject(a).startswith("falco.critical."))
    assert f"replay: {len(alerts)} alerts (0 rejected), {len(expected)} actions, 0 failed" in err


def test_replay_exits_1_when_an_action_fails(slack):
    slack.statuses["/notify"] = [503]
    rc, out, err = run_playbookd(config(slack), "--replay", "-", input_bytes=sample_lines()[1] + b"\n")
    assert rc == 1
    assert results(out) == [(1, TERMINAL_SHELL, "notify", "failed (HTTP 503)", "falco.*.*"),
                            (1, TERMINAL_SHELL, "audit", "skipped (priority Notice below min_priority Warning)",
                             TERMINAL_SHELL)]
    assert len(slack.received("/notify")) == 3  # retried up to attempts


def test_replay_rejects_bad_lines_and_goes_on(slack):
    good = sample_lines()[4]
    data = b"garbage\n" + good + b"\n\n[1,2]\n" + b'{"rule":"!!!","priority":"Notice"}\n' + good  # no final \n
    rc, out, err = run_playbookd(config(slack), "--replay", "-", "--log-format", "json", input_bytes=data)
    assert rc == 0
    assert [(n, pb) for n, _, pb, _, _ in results(out)] == [(2, "notify"), (2, "audit"), (6, "notify"), (6, "audit")]
    rejected = [json.loads(l) for l in err.splitlines() if l.startswith("{") and '"rejected"' in l]
    assert [(r["origin"], r["reason"]) for r in rejected] == [
        ("line 1", "invalid JSON near byte 0"),
        ("line 4", "not a JSON object but an array"),
        ("line 5", "the rule has no letters or digits to make a subject"),
    ]
    assert "replay: 5 alerts (3 rejected), 4 actions, 0 failed" in err


def test_replay_missing_file(slack):
    rc, out, err = run_playbookd(config(slack), "--replay", "/nonexistent/alerts.jsonl")
    assert rc == 1 and "No such file or directory" in err


def test_check_accepts_a_valid_config(slack):
    rc, out, err = run_playbookd(config(slack), "--check")
    assert rc == 0 and "ok (2 playbooks, 3 topics)" in out, err


def check_error(text, env=None):
    rc, out, err = run_playbookd(text, "--check")
    assert rc == 1 and out == ""
    return err.strip()


def test_check_reports_file_line_column_and_key(slack):
    err = check_error(config(slack) + "bogus: 1\n")
    assert re.search(r"playbooks\.yaml:10:1: key 'bogus': unknown key \(valid: nats, kubernetes, retry,", err), err
    err = check_error("playbooks:\n  x: {type: slak}\ntopics:\n  a.b: [x]\n")
    assert re.search(r"playbooks\.yaml:2:13: key 'type': unknown playbook type \(valid: slack, delete-pod(, [a-z-]+)+\)$",
                     err), err
    err = check_error("topics:\n  a.>.b: [slack]\n")
    assert err.endswith("playbooks.yaml:2:10: key 'a.>.b': pattern \"a.>.b\": '>' must be the last token"), err
    err = check_error("dry_run: maybe\ntopics:\n  a: [x]\n")
    assert err.endswith("playbooks.yaml:1:10: key 'dry_run': expected true or false"), err
    err = check_error("playbooks:\n  x: {type: slack, webhook_url: '${PLAYBOOKD_TEST_UNSET}'}\ntopics:\n  a: [x]\n")
    assert err.endswith("playbooks.yaml:2:33: environment variable PLAYBOOKD_TEST_UNSET is not set"), err


def test_check_never_prints_the_webhook_url(slack):
    err = check_error("playbooks:\n  x: {type: slack, webhook_url: 'http://10.0.0.1/services/SECRET'}\n"
                      "topics:\n  a: [x]\n")
    assert "SECRET" not in err and "must be https" in err


def print_rbac(text):
    rc, out, err = run_playbookd(text, "--print-rbac")
    assert rc == 0 and err == "", err
    return out


def test_print_rbac_prints_what_the_used_playbooks_need(slack):
    out = print_rbac(f"""
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/n')}"}}
  kill: {{type: delete-pod}}
  kill-now: {{type: delete-pod, grace_period_seconds: 0}}
  cut-off: {{type: isolate-pod, detach: true}}
topics:
  falco.notice.>: [kill, notify]
  falco.critical.>: [kill-now, taint-node]
""")
    assert out == """\
# for the playbooks: notify (slack), kill (delete-pod), kill-now (delete-pod), taint-node (taint-node)
# not used by any topic or rule, so not included: cut-off (isolate-pod)
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: playbookd
rules:
  - apiGroups: [""]
    resources: [nodes]
    verbs: [get, patch]
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, delete]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create]
"""
    assert "networkpolicies" not in out, "a playbook no topic names never runs"


def test_print_rbac_for_isolate_pod_and_for_notifications_only(slack):
    out = print_rbac("playbooks:\n  cut-off: {type: isolate-pod}\ntopics:\n  falco.>: [cut-off]\n")
    rules = out.split("rules:\n", 1)[1]
    assert rules == ('  - apiGroups: [""]\n    resources: [pods]\n    verbs: [patch]\n'
                     "  - apiGroups: [events.k8s.io]\n    resources: [events]\n    verbs: [create]\n"
                     "  - apiGroups: [networking.k8s.io]\n    resources: [networkpolicies]\n"
                     "    verbs: [get, list, create]\n")
    out = print_rbac(f"playbooks:\n  n: {{type: slack, webhook_url: '{slack.url('/n')}'}}\ntopics:\n  falco.>: [n]\n")
    assert out.endswith("rules: []\n"), "Slack needs nothing of the cluster"


def test_print_rbac_of_an_invalid_config_is_an_error():
    rc, out, err = run_playbookd("playbooks:\n  x: {type: delete-pod, nope: 1}\ntopics:\n  a: [x]\n", "--print-rbac")
    assert rc == 1 and out == "" and "playbooks.yaml:2:" in err


def test_environment_expansion(slack, tmp_path):
    path = tmp_path / "playbooks.yaml"
    path.write_text("playbooks:\n  x: {type: slack, webhook_url: '${PBD_HOOK}'}\ntopics:\n  falco.>: [x]\n")
    env = dict(os.environ, PBD_HOOK=slack.url("/from-env"))
    p = subprocess.run([PLAYBOOKD, "-c", str(path), "--replay", "-"], env=env, capture_output=True,
                       input=b'{"rule":"Some rule","priority":"Error"}\n', timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b'line 1: falco.error.some_rule -> x: ok via topic "falco.>"\n'
    assert len(slack.received("/from-env")) == 1


def test_version_and_usage():
    p = subprocess.run([PLAYBOOKD, "--version"], capture_output=True)
    assert p.returncode == 0 and re.match(rb"playbookd \d+\.\d+\.\d+\n", p.stdout)
    p = subprocess.run([PLAYBOOKD, "--log-format", "xml"], capture_output=True)
    assert p.returncode == 2 and b"text or json" in p.stderr
    p = subprocess.run([PLAYBOOKD, "--nope"], capture_output=True)
    assert p.returncode == 2 and b"usage:" in p.stderr
    p = subprocess.run([PLAYBOOKD, "--help"], capture_output=True)
    assert p.returncode == 0 and b"--print-rbac" in p.stdout
