"""test_rules.py: the match language (rules: beside topics) over the public sample of real Falco alerts:
a table of rules and the sample lines each must match (priority comparisons at every boundary, tags any of
all of, source, rule names, output_fields globs and negations on strings, integers, negative and huge
integers, null and missing fields), `continue: false`, a topic and a rule reaching one playbook once,
`--check --explain`, and rules on a real nats-server (subjects plus output_fields; no subjects: falco.>)."""

import json

from harness import (NatsClient, Playbookd, falco_subject, http_get, run_playbookd, sample_lines, split_via,
                     wait_until)

# The priority of each sample line (1-based) as severity: Emergency 7 ... Debug 0. Line 24 has the gRPC
# number 4 (Warning), line 25 "warning" in lower case.
SEVERITY = {"emergency": 7, "alert": 6, "critical": 5, "error": 4, "warning": 3, "notice": 2, "informational": 1,
            "debug": 0}
LINE_SEVERITY = {1: 5, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 4, 8: 4, 9: 4, 10: 4, 11: 4, 12: 1, 13: 1, 14: 3, 15: 3,
                 16: 5, 17: 3, 18: 2, 19: 2, 20: 2, 21: 0, 22: 0, 23: 3, 24: 3, 25: 3, 26: 5, 27: 3, 28: 2}
ALL = set(range(1, 29))
COMPARE = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}

# (match, the sample lines it matches), checked by hand against public-sample.jsonl.
TABLE = [
    # tags: any of the inner lists, all tags of one list
    ("{tags: [[container, mitre_execution]]}", {1, 6}),
    ("{tags: [[container, shell, T1059]]}", {6}),
    ("{tags: [[shell], [k8s]]}", {1, 6, 19, 20}),
    ("{tags: [[filesystem, mitre_persistence], [aws]]}", {7, 8, 9, 11, 27}),
    ("{tags: [[no_such_tag]]}", set()),
    # source, exact; a missing source never matches
    ("{source: syscall}", ALL - {2, 3, 4, 5, 10, 19, 20, 21, 22, 24, 28}),
    ("{source: k8s_audit}", {19, 20}),
    ("{source: auditlogs}", {28}),
    # Falco rule names, exact, any of
    ('{rules: ["Write below etc", "Write below binary dir"]}', {7, 8, 9, 10, 11}),
    ('{rules: ["write below etc"]}', set()),
    # output_fields on strings: globs, all must hold
    ('{output_fields: {k8s.ns.name: "def*"}}', {1, 2, 3, 4}),
    ('{output_fields: {k8s.ns.name: default, proc.name: sh}}', {1, 2}),
    ('{output_fields: {proc.name: "?"}}', {26}),
    ('{output_fields: {proc.name: "*-gen"}}', {16}),
    # negation: a missing or null field is not excluded
    ('{output_fields: {"k8s.ns.name!=": default}}', ALL - {1, 2, 3, 4}),
    # null: a positive criterion never matches it, not even "*"
    ('{output_fields: {container.image.repository: "*"}}', {1, 3, 4, 6, 12, 13, 15, 16, 17, 18, 26, 27}),
    ('{output_fields: {"container.image.repository!=": "*"}}', ALL - {1, 3, 4, 6, 12, 13, 15, 16, 17, 18, 26, 27}),
    # integers as Falco prints them, negative ones and one past 2^53
    ('{output_fields: {proc.tty: "3481?"}}', {1, 2, 3, 4, 5, 6}),
    ('{output_fields: {proc.tty: 0}}', {15, 16, 17, 18, 26, 27}),
    ('{output_fields: {user.loginuid: -1}}', {1, 2, 3, 4, 6, 9, 15, 16, 17, 18, 26, 27}),
    ('{output_fields: {"user.loginuid!=": "-*"}}', ALL - {1, 2, 3, 4, 6, 9, 15, 16, 17, 18, 26, 27}),
    ('{output_fields: {evt.time: "1685022245*"}}', {1}),
    # everything together
    ('{subjects: ["falco.*.terminal_shell_in_container"], priority: ">=Notice", tags: [[container]], '
     'source: syscall, output_fields: {"container.image.repository!=": "docker.io/*"}}', {6}),
]


def table_rules():
    """Every row of TABLE, and every comparison at every priority, as (match, expected lines)."""
    rows = list(TABLE)
    for name, level in SEVERITY.items():
        for op, cmp in COMPARE.items():
            rows.append((f'{{priority: "{op}{name.capitalize()}"}}',
                         {n for n, s in LINE_SEVERITY.items() if cmp(s, level)}))
    rows.append(('{priority: "Warning"}', {14, 15, 17, 23, 24, 25, 27}))  # no operator: =
    return rows


def replay_all(text):
    """(exit status, [(line, playbook, outcome, kind, via)]) of --replay over every sample line."""
    rc, out, err = run_playbookd(text, "--replay", "-", input_bytes=b"\n".join(sample_lines()) + b"\n")
    rows = []
    for line in out.splitlines():
        head, kind, via = split_via(line)
        number, rest = head.split(": ", 1)
        playbook, outcome = rest.split(" -> ", 1)[1].split(": ", 1)
        rows.append((int(number.split()[1]), playbook, outcome, kind, via))
    return rc, rows, err


def test_the_table_of_matches_over_the_sample(slack):
    rows = table_rules()
    playbooks = "\n".join(f"  p{i}: {{type: slack, webhook_url: \"{slack.url(f'/p{i}')}\"}}" for i in range(len(rows)))
    rules = "\n".join(f"  - name: row {i}\n    match: {match}\n    playbooks: [p{i}]" for i, (match, _) in enumerate(rows))
    rc, results, err = replay_all(f"playbooks:\n{playbooks}\nrules:\n{rules}\n")
    assert rc == 0, err
    got = {i: set() for i in range(len(rows))}
    for line, playbook, outcome, kind, via in results:
        assert outcome == "ok" and kind == "rule" and via == f"row {playbook[1:]}", (line, playbook, via)
        got[int(playbook[1:])].add(line)
    for i, (match, expected) in enumerate(rows):
        assert got[i] == expected, f"row {i}: {match}: matched lines {sorted(got[i])}, expected {sorted(expected)}"


def test_continue_false_and_a_playbook_reached_twice_runs_once(slack):
    hooks = "\n".join(f"  {p}: {{type: slack, webhook_url: \"{slack.url('/' + p)}\"}}" for p in "abc")
    text = f"""playbooks:
{hooks}
topics:
  "falco.*.terminal_shell_in_container": [a]
rules:
  - name: shells again
    match: {{rules: ["Terminal shell in container"]}}
    playbooks: [a, b]
  - name: stop on critical
    match: {{priority: ">=Critical"}}
    playbooks: [c]
    continue: false
  - name: after the stop
    playbooks: [b, c]
"""
    rc, results, err = replay_all(text)
    assert rc == 0, err
    topic = ("topic", "falco.*.terminal_shell_in_container")
    for n in ALL:
        got = [(pb, kind, via) for line, pb, _, kind, via in results if line == n]
        if n == 1:  # a critical shell: the topic brings a, the rule b (a again: once), then the stop
            assert got == [("a", *topic), ("b", "rule", "shells again"), ("c", "rule", "stop on critical")]
        elif n <= 6:
            assert got == [("a", *topic), ("b", "rule", "shells again"), ("c", "rule", "after the stop")]
        elif n in (16, 26):  # critical: the rules after the stop are not evaluated
            assert got == [("c", "rule", "stop on critical")]
        else:
            assert got == [("b", "rule", "after the stop"), ("c", "rule", "after the stop")], n
    assert len(slack.received("/a")) == 6, "a ran once per shell alert, though a topic and a rule reach it"


EXPLAIN_CONFIG = """playbooks:
  notify: {type: slack, webhook_url: "https://hooks.example/x"}
  kill: {type: delete-pod}
topics:
  "falco.*.*": [notify]
rules:
  - name: shells in prod
    match:
      priority: ">=Warning"
      output_fields: {k8s.ns.name: "prod-*"}
    playbooks: [kill, notify]
  - name: critical shells
    match: {priority: ">=Critical", tags: [[container, shell]]}
    playbooks: [kill]
    continue: false
  - name: last
    playbooks: [notify]
"""


def explain(tmp_path, alert):
    path = tmp_path / "alert.json"
    path.write_bytes(alert)
    return run_playbookd(EXPLAIN_CONFIG, "--check", "--explain", str(path))


def test_check_explain_a_matching_alert(tmp_path):
    rc, out, err = explain(tmp_path, sample_lines()[0])
    assert rc == 0, err
    assert out == """alert: rule "Terminal shell in container", priority Critical, subject falco.critical.terminal_shell_in_container
topic "falco.*.*": matched: notify
rule "shells in prod": no: output_fields k8s.ns.name is "default", not "prod-*"
rule "critical shells": matched: kill (continue: false: the rules after it are not evaluated)
rule "last": not evaluated
playbooks, in order:
  notify (slack) via topic "falco.*.*"
  kill (delete-pod) via rule "critical shells"
"""


def test_check_explain_a_non_matching_alert_escapes_its_values(tmp_path):
    alert = json.loads(sample_lines()[1])
    alert["priority"] = "Error"
    alert["output_fields"]["k8s.ns.name"] = 'x"\n\u001b[31mred'
    alert["tags"] = ["container"]
    rc, out, err = explain(tmp_path, json.dumps(alert).encode())
    assert rc == 0, err
    assert out.splitlines()[1:4] == [
        'topic "falco.*.*": matched: notify',
        'rule "shells in prod": no: output_fields k8s.ns.name is "x\\"\\n\\u001b[31mred", not "prod-*"',
        'rule "critical shells": no: priority Error is not >=Critical',
    ]
    alert["priority"] = "Critical"
    alert["output_fields"]["k8s.ns.name"] = None
    rc, out, err = explain(tmp_path, json.dumps(alert).encode())
    assert out.splitlines()[2:4] == [
        'rule "shells in prod": no: output_fields k8s.ns.name is null, not "prod-*"',
        'rule "critical shells": no: tags: no list is all in the alert\'s tags ["container"] (["container", "shell"])',
    ]


def test_check_explain_rejects_a_bad_alert_and_needs_check(tmp_path):
    rc, out, err = explain(tmp_path, b'{"rule": "x"}')
    assert rc == 1 and "missing priority" in err
    rc, out, err = run_playbookd(EXPLAIN_CONFIG, "--explain", "x.json")
    assert rc == 2 and "--explain goes with --check" in err


def test_rules_on_nats_subscribe_to_the_union_and_deliver_once(nats, slack):
    hooks = "\n".join(f"  {p}: {{type: slack, webhook_url: \"{slack.url('/' + p)}\"}}" for p in ("shell", "etc"))
    pbd = Playbookd(f"""
nats:
  servers: [{nats.url}]
http: {{listen: "127.0.0.1:0"}}
playbooks:
{hooks}
rules:
  - name: shells in default
    match:
      subjects: ["falco.*.terminal_shell_in_container", "falco.critical.>"]
      output_fields: {{k8s.ns.name: default, proc.tty: "348*"}}
    playbooks: [shell]
  - name: etc writes anywhere
    match: {{rules: ["Write below etc"]}}
    playbooks: [etc]
""")
    try:
        pbd.wait_ready()
        assert [l["pattern"] for l in pbd.logged("subscribed")] == ["falco.>"], "falco.> covers the other patterns"
        lines = sample_lines()
        pub = NatsClient(nats.port)
        for raw in lines[:9]:  # six shells (four in default), three writes below etc
            pub.publish(falco_subject(json.loads(raw)), raw)
        pub.publish("other.subject", lines[0])  # no pattern covers it
        pub.flush()
        wait_until(lambda: len(slack.received("/shell")) >= 4 and len(slack.received("/etc")) >= 3,
                   what="the Slack posts")
        wait_until(lambda: len(pbd.logged("action")) >= 7, what="the action lines")
        actions = pbd.logged("action")
        assert sorted((a["playbook"], a["matched"]) for a in actions) == \
            [("etc", "etc writes anywhere")] * 3 + [("shell", "shells in default")] * 4
        assert all(a["rule"] in ("Terminal shell in container", "Write below etc") for a in actions)
        status, metrics = http_get(int(pbd.logged("http listening")[0]["port"]), "/metrics")
        assert 'playbookd_rule_matches_total{rule="shells in default"} 4\n' in metrics
        assert 'playbookd_rule_matches_total{rule="etc writes anywhere"} 3\n' in metrics
    finally:
        pbd.stop()
    assert len(slack.received("/shell")) == 4, "each alert once, though two of its patterns match"
    assert len(slack.received("/etc")) == 3
