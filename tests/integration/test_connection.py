"""test_connection.py: playbookd and the NATS connection: it starts before the server is up, reconnects
forever (logging disconnects and reconnects) and still handles alerts, authenticates with a token without
logging it, and shares alerts in a queue group."""

from harness import NatsClient, NatsServer, Playbookd, free_port, sample_lines, wait_until

SUBJECT = "falco.notice.terminal_shell_in_container"


def config(url, slack, extra=""):
    return f"""
nats:
  servers: [{url}]
{extra}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}"}}
topics:
  "falco.>": [notify]
"""


def test_starts_before_nats_and_survives_a_restart(slack):
    server = NatsServer(port=free_port(), start=False)
    pbd = Playbookd(config(server.url, slack))
    try:
        wait_until(lambda: pbd.logged("nats not reachable yet, retrying in the background"), what="waiting log")
        assert pbd.proc.poll() is None
        server.start()
        wait_until(lambda: pbd.logged("ready"), timeout=15, what="ready after the server came up")
        pub = NatsClient(server.port)
        pub.publish(SUBJECT, sample_lines()[1])
        wait_until(lambda: len(slack.received("/notify")) == 1, what="first alert")
        pub.close()

        server.kill()
        wait_until(lambda: pbd.logged("nats disconnected"), what="disconnect log")
        server.start()
        wait_until(lambda: pbd.logged("nats reconnected"), timeout=15, what="reconnect log")
        pub = NatsClient(server.port)
        pub.publish(SUBJECT, sample_lines()[2])
        wait_until(lambda: len(slack.received("/notify")) == 2, what="alert after the reconnect")
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
        server.stop()


def test_token_authentication_and_the_token_is_never_logged(slack, monkeypatch):
    server = NatsServer(token="s3cr3t-t0ken")
    monkeypatch.setenv("NATS_TOKEN", "s3cr3t-t0ken")
    pbd = Playbookd(config(server.url, slack, "  token: ${NATS_TOKEN}"))
    try:
        pbd.wait_ready()
        pub = NatsClient(server.port, token="s3cr3t-t0ken")
        pub.publish(SUBJECT, sample_lines()[1])
        wait_until(lambda: len(slack.received("/notify")) == 1, what="alert through an authenticated server")
        pub.close()
    finally:
        assert pbd.stop() == 0
        text = open(pbd.log_path).read()
        pbd.cleanup()
        server.stop()
    assert "s3cr3t" not in text


def test_credentials_in_a_server_url_are_never_logged(slack):
    server = NatsServer(token="url-t0ken-s3cret")
    url = f"nats://url-t0ken-s3cret@127.0.0.1:{server.port}"
    pbd = Playbookd(config(url, slack))
    try:
        pbd.wait_ready()
        connected = pbd.logged("nats connected")
        assert connected and connected[0]["url"] == f"nats://***@127.0.0.1:{server.port}"
    finally:
        assert pbd.stop() == 0
        text = open(pbd.log_path).read()
        pbd.cleanup()
        server.stop()
    assert "url-t0ken-s3cret" not in text


def test_queue_group_shares_alerts_between_replicas(nats, slack):
    text = config(nats.url, slack, "  queue_group: playbookd")
    replicas = [Playbookd(text), Playbookd(text)]
    try:
        for r in replicas:
            r.wait_ready()
        pub = NatsClient(nats.port)
        lines = sample_lines()
        for _ in range(3):
            for raw in lines:
                pub.publish(SUBJECT, raw)
        total = 3 * len(lines)
        wait_until(lambda: len(slack.received("/notify")) >= total, what="every alert once")
        pub.flush()
        wait_until(lambda: sum(len(r.logged("action")) for r in replicas) >= total, what="action logs")
        counts = [len(r.logged("action")) for r in replicas]
        assert sum(counts) == total and len(slack.received("/notify")) == total, counts
        assert all(c > 0 for c in counts), f"both replicas should take a share: {counts}"
        pub.close()
    finally:
        for r in replicas:
            assert r.stop() == 0
            r.cleanup()


def test_queue_group_with_overlapping_patterns_loses_nothing(nats, slack):
    """NATS delivers a message once per queue group, across all of the group's matching subscriptions:
    whichever pattern's subscription receives it must run the playbooks of every matching pattern."""
    text = f"""
nats: {{servers: [{nats.url}], queue_group: playbookd}}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}"}}
  audit: {{type: slack, webhook_url: "{slack.url('/audit')}"}}
topics:
  "falco.*.*": [notify]
  {SUBJECT}: [audit, notify]
  "falco.>": [notify]
"""
    pbd = Playbookd(text)
    try:
        pbd.wait_ready()
        pub = NatsClient(nats.port)
        for _ in range(30):
            pub.publish(SUBJECT, sample_lines()[1])
        wait_until(lambda: len(slack.received("/notify")) >= 30 and len(slack.received("/audit")) >= 30,
                   what="every alert to both playbooks")
        pub.flush()
        wait_until(lambda: len(pbd.logged("action")) >= 60, what="action logs")
        assert len(slack.received("/notify")) == 30 and len(slack.received("/audit")) == 30
        pub.close()
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
