"""test_http_endpoint.py: the health and metrics endpoint under abuse. Slow-loris clients from the probe's
own address must not make /healthz fail: every probe answers 200, and each bound the endpoint applies is
counted in /metrics and logged."""

import socket
import threading
import time

from harness import Playbookd, http_get, wait_until

ATTACKERS = 40
ATTACK_S = 30  # the acceptance figure
PROBE_EVERY_S = 0.5


def config(nats_url, slack):
    return f"""
nats: {{servers: [{nats_url}]}}
http: {{listen: "127.0.0.1:0"}}
playbooks:
  notify: {{type: slack, webhook_url: "{slack.url('/notify')}"}}
topics:
  "falco.>": [notify]
"""


class SlowLoris:
    """ATTACKERS connections from 127.0.0.1, each sending one more header byte every second and never ending
    its headers; a connection the server closes is opened again (as a real attacker would)."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.connected = self.closed_by_server = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(ATTACKERS)]
        for t in self.threads:
            t.start()

    def _count(self, name):
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)

    def _run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    self._count("connected")
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    while not self.stop.wait(1.0):
                        s.sendall(b"a")
                        s.settimeout(0.001)
                        try:
                            if s.recv(4096) == b"":
                                break  # closed by the server
                        except (socket.timeout, BlockingIOError):
                            pass
                        s.settimeout(5)
            except OSError:
                pass
            if not self.stop.is_set():
                self._count("closed_by_server")
                time.sleep(0.2)

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    values = [float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, f"{prefix!r} not in /metrics"
    return values[0]


def test_slow_loris_from_the_probes_address_never_fails_healthz(nats, slack):
    pbd = Playbookd(config(nats.url, slack))
    attack = None
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        pbd.wait_ready()
        attack = SlowLoris(port)
        wait_until(lambda: attack.connected >= ATTACKERS, what="every slow client connected")
        probes = []
        end = time.monotonic() + ATTACK_S
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                probes.append(http_get(port, "/healthz", timeout=5))
            except OSError as e:  # a probe that cannot connect or times out is a failed probe
                probes.append((None, repr(e)))
            time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - started)))
        failed = [p for p in probes if p != (200, "ok\n")]
        assert len(probes) >= 20 and not failed, f"{len(failed)} of {len(probes)} probes failed: {failed[:3]}"

        # The attack was real and the bounds did the work: counted, and logged at most once a second.
        status, text = http_get(port, "/metrics", timeout=5)
        assert status == 200
        assert metric(text, "playbookd_http_connections_closed_total", reason="per_ip_limit") > 0
        assert attack.closed_by_server > 0
        logged = pbd.logged("http: closed the oldest connection of an address over 16")
        assert logged and all(int(l["count"]) >= 1 for l in logged)
        assert len(logged) <= ATTACK_S + 5, "throttled: at most about one line a second"
    finally:
        if attack:
            attack.end()
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_connection_that_never_finishes_its_request_is_closed_at_the_deadline(nats, slack):
    """One slow client alone (no limit reached): the request deadline closes it although it keeps sending."""
    pbd = Playbookd(config(nats.url, slack))
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            closed = False
            for _ in range(25):  # a byte every 0.5 s: never idle, never done
                time.sleep(0.5)
                try:
                    s.sendall(b"a")
                    s.settimeout(0.001)
                    closed = s.recv(4096) == b""
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                s.settimeout(30)
                if closed:
                    break
            assert closed, "still open after 12 s of trickling"
        text = http_get(port, "/metrics")[1]
        assert metric(text, "playbookd_http_connections_closed_total", reason="deadline") == 1
        assert pbd.wait_logged("http: closed a connection slower than 5 s to send its request or take the answer")
        assert http_get(port, "/readyz")[0] == 200
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_over_the_total_limit_the_oldest_connections_make_room(nats, slack):
    """75 waiting connections from five addresses (15 each, under the per-address limit of 16) are over the
    total of 64: the 11 oldest are closed, and a probe still gets its answer."""
    pbd = Playbookd(config(nats.url, slack))
    held = []
    try:
        port = int(pbd.wait_logged("http listening")[0]["port"])
        for i in range(75):
            s = socket.socket()
            s.bind((f"127.0.0.{2 + i % 5}", 0))
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            held.append(s)
            if i == 0:
                wait_until(lambda: metric(http_get(port, "/metrics")[1], "playbookd_http_connections") >= 2,
                           what="the first connection seen before the next ones")
        text = wait_until(lambda: (t := http_get(port, "/metrics")[1]) and
                          metric(t, "playbookd_http_connections_closed_total", reason="total_limit") >= 11 and t,
                          what="the oldest closed")
        assert metric(text, "playbookd_http_connections_closed_total", reason="per_ip_limit") == 0
        assert http_get(port, "/healthz") == (200, "ok\n")

        def closed(s):
            s.settimeout(5)
            try:
                return s.recv(1) == b""
            except OSError:
                return True
        assert closed(held[0]), "the oldest connection is one of those closed"
        held[-1].sendall(b"Host: x\r\n\r\n")
        assert held[-1].recv(4096).startswith(b"HTTP/1.1 200"), "the newest is served"
        assert pbd.logged("http: closed the oldest connection: over 64 connections")
    finally:
        for s in held:
            s.close()
        assert pbd.stop() == 0
        pbd.cleanup()
