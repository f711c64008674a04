"""test_hardening.py: hostile input on the Kubernetes side, against the fake API server: a token file that
would inject headers or send none, an API Status message holding line breaks, an Event note cut inside a
multi-byte character, an Event POST answered 2xx but not 201."""

import json

import pytest

from fake_kube import FakeKube
from harness import run_playbookd, strip_via

UID = "6f1c1e8a-0000-4000-8000-000000000001"
SUBJECT = "falco.notice.terminal_shell_in_container"
EVENTS = r"^/apis/events\.k8s\.io/v1/namespaces/[^/]+/events$"


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    for pod in ("web-0", "web-1", "web-2"):
        fake.add_pod("default", pod, node="node-1")
    yield fake
    fake.stop()


@pytest.fixture
def sa(incluster):
    """The service account directory of conftest's in-cluster environment, against this module's kube."""
    return incluster


def alert(pod="web-0", rule="Terminal shell in container"):
    fields = {"container.id": "ee97d9c4186f", "k8s.ns.name": "default", "k8s.pod.name": pod}
    return json.dumps({"rule": rule, "priority": "Notice", "hostname": "node-1", "source": "syscall",
                       "time": "2026-11-23T03:00:00.000000000Z", "output": f"A shell in default/{pod}",
                       "output_fields": fields}).encode() + b"\n"


def config(sa, topics=f"  {SUBJECT}: [kill]"):
    return f"""
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 2, initial_backoff_ms: 5, max_backoff_ms: 10}}
playbooks:
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
{topics}
"""


def json_logs(err):
    """The JSON log lines of stderr; every line but the replay summary is one JSON object."""
    lines = [line for line in err.split("\n")[:-1] if not line.startswith("replay: ")]
    assert err.endswith("\n") and all(line.startswith("{") for line in lines), f"not one JSON object a line:\n{err}"
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("content", [b"{token}\r\nX-Injected: yes\n", b"{token}\nX-Injected: yes",
                                     b"{token}\n\n", b"", b"\n", b"  \r\n"],
                         ids=["crlf", "lf", "two-newlines", "empty", "newline-only", "blank"])
def test_a_token_file_that_would_inject_headers_or_send_none_fails_the_action(kube, sa, content):
    with open(f"{sa}/token", "wb") as f:
        f.write(content.replace(b"{token}", kube.token.encode()))
    rc, out, err = run_playbookd(config(sa), "--replay", "-", "--log-format", "json", input_bytes=alert())
    assert rc == 1, out + err
    assert out.startswith(f"line 1: {SUBJECT} -> kill: failed (delete pod: {sa}/token: the token "), out
    assert out.count("\n") == 1, out
    assert kube.requests() == [], "no request at all: neither one with injected headers nor one without a token"
    assert kube.pod("default", "web-0") is not None
    assert kube.token not in err and kube.token not in out, "the token is never logged"
    actions = [l for l in json_logs(err) if l["msg"] == "action"]
    assert len(actions) == 1 and actions[0]["attempts"] == "2", "transient: retried up to retry.attempts"
    assert [l["msg"] for l in json_logs(err)].count("the service account token cannot be used: requests fail until "
                                                     "the file is right") == 1, err


def test_a_valid_token_with_one_line_end_still_works(kube, sa):
    with open(f"{sa}/token", "wb") as f:
        f.write(kube.token.encode() + b"\r\n")
    rc, out, err = run_playbookd(config(sa), "--replay", "-", input_bytes=alert())
    assert rc == 0, out + err
    assert strip_via(out.rstrip("\n")) == f"line 1: {SUBJECT} -> kill: ok" and out.count("\n") == 1
    assert [r.headers["authorization"] for r in kube.requests() if r.method == "DELETE"] == [f"Bearer {kube.token}"]


def test_api_status_text_never_breaks_a_replay_line_or_a_log_line(kube, sa):
    forged = "denied\nline 2: falco.notice.x -> kill: ok\r\n{\"msg\":\"forged\"}\rend\u2028\u202e"
    kube.add_fault("DELETE", status=403, times=None, message=forged)
    rc, out, err = run_playbookd(config(sa), "--replay", "-", "--log-format", "json", input_bytes=alert())
    assert rc == 1
    assert out.count("\n") == 1 and "\r" not in out and "\u2028" not in out and "\u202e" not in out, repr(out)
    assert out.startswith(f"line 1: {SUBJECT} -> kill: failed (delete pod: HTTP 403 (Forbidden: "
                          "denied\\nline 2: falco.notice.x -> kill: ok\\u000d\\n"), repr(out)
    assert "\r" not in err and "\u2028" not in err
    actions = [l for l in json_logs(err) if l["msg"] == "action"]
    assert len(actions) == 1 and forged in actions[0]["outcome"], actions  # the JSON value holds it, escaped


def test_the_event_note_is_cut_on_a_character_boundary(kube, sa):
    # The note is capped below 900 bytes; rules of 3-byte characters after 1, 2 or 3 ASCII letters put the
    # cap at each position within a character.
    rules = [letters + "\u20ac" * 320 for letters in ("a", "ab", "abc")]
    data = b"".join(alert(f"web-{i}", rule) for i, rule in enumerate(rules))
    topics = "\n".join(f"  falco.notice.{letters}: [kill]" for letters in ("a", "ab", "abc"))
    rc, out, err = run_playbookd(config(sa, topics), "--replay", "-", input_bytes=data)
    assert rc == 0, out + err
    posts = [r for r in kube.requests() if r.method == "POST" and "/events" in r.path]
    assert len(posts) == 3 and all(r.status == 201 for r in posts), [(r.status, r.body[:200]) for r in posts]
    notes = sorted(json.loads(r.body.decode("utf-8"))["note"] for r in posts)  # strict: valid UTF-8
    for note, rule in zip(notes, sorted(rules, key=len, reverse=True)):  # "…abc€" sorts first
        full = f"playbookd playbook kill (delete-pod) after Falco rule \"{rule}\" (Notice)"
        assert len(note.encode()) < 900 and note == full[:len(note)], note
        assert len(note.encode()) > 900 - 4, "cut at the cap, not before"


@pytest.mark.parametrize("status", [200, 202])
def test_an_event_answered_2xx_but_not_201_logs_its_status(kube, sa, status):
    kube.add_fault("POST", EVENTS, status=status, times=None)
    rc, out, err = run_playbookd(config(sa), "--replay", "-", "--log-format", "json", input_bytes=alert())
    assert rc == 0 and strip_via(out.rstrip("\n")) == f"line 1: {SUBJECT} -> kill: ok" and out.count("\n") == 1, out + err
    failed = [l for l in json_logs(err) if l["msg"] == "event not recorded"]
    assert len(failed) == 1, err
    assert failed[0]["error"] == f"HTTP {status} (expected 201 Created)", failed
