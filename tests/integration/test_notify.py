"""test_notify.py: the webhook and teams playbooks through a real nats-server, against fake receivers:
the webhook's document (the alert exactly as published, the actions of earlier playbooks, dry_run) and
its custom headers; the Teams message checked against the Adaptive Card schema's required fields, with
hostile alert text escaped for Teams' markdown; 5xx answers retried, 202 Accepted ok; secrets never in
the logs; http to a non-loopback host refused at load with file:line:column."""

import json
import re

import pytest

from fake_webhook import FakeWebhook
from harness import NatsClient, Playbookd, run_playbookd, wait_until

SHELL = "falco.notice.terminal_shell_in_container"
TOKEN = "s3cr3t-t0ken-4711"  # in a header, from the environment
URL_SECRET = "T0KENinTHEurl"  # in the webhook URL's path

# Falco's nanosecond evt.time is beyond 2^53: re-serialised through a double it would change.
ALERT = ('{"output":"shell in pod (user=root cmd=bash)","priority":"Notice","rule":"Terminal shell in container",'
         '"time":"2026-11-23T00:00:00.123456789Z","output_fields":{"evt.time":1685022245478445995,'
         '"k8s.ns.name":"default","k8s.pod.name":"web-1","container.id":"ee97d9c4186f","proc.tty":34816,'
         '"evt.is_ok":true,"user.name":null},"hostname":"node-1","source":"syscall","tags":["shell"]}')


@pytest.fixture
def hook():
    receiver = FakeWebhook()
    yield receiver
    receiver.stop()


def start(text, *args, env=None):
    pbd = Playbookd(text, *args, env=env)
    pbd.wait_ready()
    return pbd


def stop(pbd):
    assert pbd.stop() == 0
    log = open(pbd.log_path).read()
    pbd.cleanup()
    return log


def publish(nats, payload, subject=SHELL):
    pub = NatsClient(nats.port)
    pub.publish(subject, payload)
    pub.close()


def notify_config(nats, playbooks, order):
    return f"""
nats:
  servers: [{nats.url}]
retry: {{attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 50}}
playbooks:
  {playbooks}
topics:
  {SHELL}: {order}
"""


def webhook_config(nats, hook):
    return notify_config(nats, f"""quiet: {{type: slack, webhook_url: "{hook.url('/slack')}", min_priority: Critical}}
  chat:  {{type: teams, webhook_url: "{hook.url('/teams')}"}}
  hook:
    type: webhook
    url: "{hook.url('/hook/' + URL_SECRET)}"
    headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}", X-Playbookd-Test: "yes"}}
    timeout_ms: 5000""", "[quiet, chat, hook]")


@pytest.mark.parametrize("dry_run", [False, True])
def test_webhook_document_headers_and_earlier_actions(nats, hook, monkeypatch, dry_run):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    pbd = start(webhook_config(nats, hook), *(["--dry-run"] if dry_run else []))
    try:
        publish(nats, ALERT)
        wait_until(lambda: len(pbd.logged("action")) == 3, what="three actions")
    finally:
        log = stop(pbd)
    [req] = hook.received("/hook/" + URL_SECRET)
    doc = json.loads(req["body"])
    assert list(doc) == ["alert", "actions", "dry_run"]
    assert doc["alert"] == json.loads(ALERT)  # exact: the big integer included
    assert b"1685022245478445995" in req["body"]
    assert doc["dry_run"] is dry_run
    assert doc["actions"] == [
        {"playbook": "quiet", "type": "slack", "outcome": "skipped",
         "reason": "priority Notice below min_priority Critical", "target": None},
        {"playbook": "chat", "type": "teams", "outcome": "ok", "reason": None, "target": None},
    ]
    assert req["headers"]["Authorization"] == "Bearer " + TOKEN
    assert req["headers"]["X-Playbookd-Test"] == "yes"
    assert req["headers"]["Content-Type"] == "application/json"
    assert [n for n, _ in req["header_list"]].count("Content-Type") == 1
    assert TOKEN not in log and URL_SECRET not in log


def test_webhook_5xx_retried_then_ok_and_failure_logs_no_secret(nats, hook, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    path = "/hook/" + URL_SECRET
    hook.statuses[path] = [503, 500, 200]
    hook.retry_after = 0
    pbd = start(webhook_config(nats, hook))
    try:
        publish(nats, ALERT)
        wait_until(lambda: len(pbd.logged("action", playbook="hook")) == 1, what="the webhook action")
        [first] = pbd.logged("action", playbook="hook")
        assert first["outcome"] == "ok" and first["attempts"] == "3"
        assert len(hook.received(path)) == 3

        hook.statuses[path] = [500]  # forever: failed after the attempts
        publish(nats, ALERT)
        wait_until(lambda: len(pbd.logged("action", playbook="hook")) == 2, what="the failed action")
        failed = pbd.logged("action", playbook="hook")[1]
        assert failed["outcome"] == "failed (HTTP 500)" and failed["attempts"] == "3"
        assert failed["level"] == "warn"
    finally:
        log = stop(pbd)
    assert "failed (HTTP 500)" in log
    assert TOKEN not in log and URL_SECRET not in log and str(hook.port) not in log


# From microsoft/AdaptiveCards, schemas/1.4.0/adaptive-card.json: the definitions AdaptiveCard (version is
# required on a top-level card, its description says), TextBlock (required: text), FactSet (required:
# facts) and Fact (required: title, value), each with additionalProperties: false, every element's type
# required by Extendable.Element; and the enums Colors, FontSize, FontWeight, Spacing (case-insensitive).
CARD_PROPERTIES = {"type", "version", "refresh", "body", "actions", "selectAction", "fallbackText",
                   "backgroundImage", "minHeight", "speak", "lang", "verticalContentAlignment", "$schema"}
ELEMENT_COMMON = {"type", "fallback", "height", "separator", "spacing", "id", "isVisible", "requires"}
ELEMENTS = {
    "TextBlock": ({"text"}, ELEMENT_COMMON | {"text", "color", "fontType", "horizontalAlignment", "isSubtle",
                                               "maxLines", "size", "weight", "wrap"}),
    "FactSet": ({"facts"}, ELEMENT_COMMON | {"facts"}),
}
ENUMS = {
    "color": {"default", "dark", "light", "accent", "good", "warning", "attention"},
    "size": {"default", "small", "medium", "large", "extralarge"},
    "weight": {"default", "lighter", "bolder"},
    "spacing": {"default", "none", "small", "medium", "large", "extralarge", "padding"},
}


def check_adaptive_card_message(msg):
    """Asserts the Teams message and its card follow the schema; returns the card's body."""
    assert msg["type"] == "message" and len(msg["attachments"]) == 1
    att = msg["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert set(card) <= CARD_PROPERTIES, set(card) - CARD_PROPERTIES
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert isinstance(card["body"], list) and card["body"]
    for el in card["body"]:
        required, allowed = ELEMENTS[el["type"]]
        assert required <= set(el) and set(el) <= allowed, el
        for key, values in ENUMS.items():
            assert key not in el or el[key].lower() in values, el
        if el["type"] == "TextBlock":
            assert isinstance(el["text"], str)
            assert "wrap" not in el or isinstance(el["wrap"], bool)
        else:
            for fact in el["facts"]:
                assert set(fact) == {"title", "value"}, fact
                assert isinstance(fact["title"], str) and isinstance(fact["value"], str)
    return card["body"]


def texts(body):
    """Every text Teams renders as markdown: TextBlock text, Fact titles and values."""
    out = []
    for el in body:
        if el["type"] == "TextBlock":
            out.append(el["text"])
        else:
            out += [t for f in el["facts"] for t in (f["title"], f["value"])]
    return out


def facts(body):
    return {f["title"]: f["value"] for el in body if el["type"] == "FactSet" for f in el["facts"]}


def markdown_unescape(text):
    """CommonMark backslash escapes: a backslash before ASCII punctuation stands for that character."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def unescaped_specials(text):
    """The markdown characters in text that no backslash escapes (a lone parenthesis is text: a link needs
    a ']' before it)."""
    found, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in "*_[]<>`~#&":
            found.append(text[i])
        i += 1
    return found


def teams_config(nats, hook):
    url = hook.url("/teams/" + URL_SECRET)
    return notify_config(nats, f'chat: {{type: teams, webhook_url: "{url}"}}', "[chat]")


EVIL_OUTPUT = ("shell <at>Everyone</at> [link](http://evil.example) **bold** _it_ `code` ~~gone~~ # head & "
               "&lt;at&gt; \\*x\\* line\nbreak \u202etxt.exe \"quoted\"")


def test_teams_card_follows_the_schema_and_escapes_hostile_text(nats, hook):
    evil = json.loads(ALERT)
    evil.update(rule="<at>Admin</at> [click](http://evil) **x**", output=EVIL_OUTPUT)
    evil["output_fields"].update({"k8s.pod.name": "- [pod](http://evil)", "container.name": "1. <b>c</b>"})
    pbd = start(teams_config(nats, hook))
    try:
        publish(nats, json.dumps(evil))
        publish(nats, ALERT.replace("shell in pod (user=root cmd=bash)", "A" * 5000))
        wait_until(lambda: len(pbd.logged("action")) == 2, what="two actions")
        assert [a["outcome"] for a in pbd.logged("action")] == ["ok", "ok"]  # 202 Accepted is ok
    finally:
        stop(pbd)
    posts = hook.bodies("/teams/" + URL_SECRET)  # in either order: a notification may run on any worker
    [first] = [p for p in posts if "AAAA" not in json.dumps(p)]
    [long] = [p for p in posts if "AAAA" in json.dumps(p)]
    body = check_adaptive_card_message(first)
    check_adaptive_card_message(long)
    raw = json.dumps(first, ensure_ascii=False)
    assert "<at>" not in raw and "](" not in raw.replace("\\\\](", "") and "\u202e" not in raw
    for text in texts(body):
        assert unescaped_specials(text) == [], text
        assert "\n" not in text and "\r" not in text
        assert not re.match(r"^([-+]|\d+\.)", text) or text[0] == "\\", text
    title = body[0]["text"]
    assert markdown_unescape(title) == f"Falco alert: {evil['rule']} (Notice)"
    expected = EVIL_OUTPUT.replace("\n", "\\n").replace("\u202e", "\\u202e")
    assert [markdown_unescape(t) for t in texts(body)].count(expected) == 1
    f = facts(body)
    assert markdown_unescape(f["Pod"]) == "- [pod](http://evil)" and f["Pod"].startswith("\\-")
    assert markdown_unescape(f["Container"]) == "1. <b>c</b>" and f["Container"].startswith("1\\.")
    assert f["Namespace"] == "default" and f["Hostname"] == "node-1" and f["Priority"] == "Notice"
    cut = [t for t in texts(check_adaptive_card_message(long)) if t.startswith("AAA")]
    assert cut == ["A" * 3000 + "…"]


def test_teams_5xx_and_429_retried_then_ok_and_dry_run_marked(nats, hook):
    path = "/teams/" + URL_SECRET
    hook.statuses[path] = [500, 429, 202]
    pbd = start(teams_config(nats, hook), "--dry-run")
    try:
        publish(nats, ALERT)
        wait_until(lambda: pbd.logged("action"), what="the action")
        [action] = pbd.logged("action")
        assert action["outcome"] == "ok" and action["attempts"] == "3"
        hook.statuses[path] = [400]  # a permanent refusal is not retried
        publish(nats, ALERT)
        wait_until(lambda: len(pbd.logged("action")) == 2, what="the refused action")
        refused = pbd.logged("action")[1]
        assert refused["outcome"] == "failed (HTTP 400)" and refused["attempts"] == "1"
    finally:
        log = stop(pbd)
    assert URL_SECRET not in log
    bodies = hook.bodies(path)
    assert len(bodies) == 4
    body = check_adaptive_card_message(bodies[-1])
    assert body[0]["text"].startswith("\\[DRY RUN\\] Falco alert: ")
    assert body[-1]["text"] == "playbookd (dry run)"


def check_error(text):
    rc, out, err = run_playbookd(text, "--check")
    assert rc == 1 and out == "", err
    return err.strip()


@pytest.mark.parametrize("line, at, reason", [
    ("{type: teams, webhook_url: 'http://10.0.0.1/workflows/SECRET'}", "'http", "must be https"),
    ("{type: webhook, url: 'http://hooks.example/SECRET'}", "'http", "must be https"),
    ("{type: webhook, url: 'https://h.example/', headers: {'Bad Name': SECRET}}", "'Bad",
     "key 'Bad Name': not a valid HTTP header name"),
    ("{type: webhook, url: 'https://h.example/', headers: {content-type: SECRET}}", "content-type",
     "key 'content-type': playbookd sets this header itself"),
    ("{type: webhook, url: 'https://h.example/', headers: {Host: SECRET}}", "Host",
     "key 'Host': playbookd sets this header itself"),
    ("{type: webhook, url: 'https://h.example/', headers: {X-A: \"SECRET\\r\\nX-Injected: 1\"}}", "\"SECRET",
     "key 'X-A': the value must be at most 8192 bytes without control characters"),
    ("{type: webhook, url: 'https://h.example/', headers: {X-A: SECRET, x-a: b}}", "x-a",
     "key 'x-a': header given twice"),
    ("{type: webhook, url: 'https://h.example/', headers: [SECRET]}", "[SECRET",
     "headers must be a map of header names to values"),
])
def test_bad_urls_and_headers_are_refused_at_load(line, at, reason):
    err = check_error(f"playbooks:\n  x: {line}\ntopics:\n  a: [x]\n")
    column = len("  x: ") + line.index(at) + 1
    assert f"playbooks.yaml:2:{column}: " in err and reason in err, err
    assert "SECRET" not in err


def test_print_rbac_needs_nothing_for_notifications(hook):
    rc, out, err = run_playbookd(f"""
playbooks:
  chat: {{type: teams, webhook_url: "{hook.url('/t')}"}}
  hook: {{type: webhook, url: "{hook.url('/h')}"}}
topics:
  falco.>: [chat, hook]
""", "--print-rbac")
    assert rc == 0 and err == "", err
    assert out.endswith("rules: []\n"), "neither calls the Kubernetes API"
