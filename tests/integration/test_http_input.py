"""test_http_input.py: the alert input over HTTP(S) (http.alerts), against a real nats-server, the fake
Slack and the fake Kubernetes API. The bodies Falco's http_output and falcosidekick's webhook (and Talon)
outputs send, and newline-delimited batches, reach the playbooks of their subjects; a missing or wrong
token is 401; a body over 1 MiB is 413; a full queue is 503 with Retry-After; mTLS refuses a client without
a certificate signed by client_ca; without authentication the input listens on loopback only unless
insecure: true, said at start-up; with JetStream an alert answered 200 is in the stream and survives
kill -9."""

import datetime
import http.client
import ipaddress
import json
import signal
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from fake_kube import cert_pem, key_pem, make_certificate, write_file
from harness import NatsServer, Playbookd, http_get, js_request, run_playbookd, wait_until

TOKEN = "s3cret-token-0123456789"
SHELL = "falco.notice.terminal_shell_in_container"


def falco_http_output_body():
    """What Falco's http_output POSTs with json_output: the same JSON object as its stdout json output."""
    return json.dumps({
        "hostname": "node-1", "output": "13:00:00.000000000: Notice A shell was spawned (user=root shell=sh)",
        "output_fields": {"container.id": "ee97d9c4186f", "evt.time": 1700000000000000000,
                          "k8s.ns.name": "default", "k8s.pod.name": "web-1", "proc.cmdline": "sh -i",
                          "user.name": "root", "proc.tty": 34816},
        "priority": "Notice", "rule": "Terminal shell in container", "source": "syscall",
        "tags": ["container", "mitre_execution", "shell"], "time": "2026-11-23T13:00:00.000000000Z"},
        separators=(",", ":"))


def falcosidekick_webhook_body():
    """falcosidekick's webhook (and Talon) output: its FalcoPayload, Falco's fields plus uuid (and the
    hostname and tags it passes on); time as Go's RFC 3339 with nanoseconds, output_fields numbers as
    float64."""
    return json.dumps({
        "uuid": "5f3c8e1a-9b2d-4c6e-8f0a-1b2c3d4e5f60", "output": "Critical Sensitive file opened (file=/etc/shadow)",
        "priority": "Critical", "rule": "Read sensitive file untrusted", "time": "2026-11-23T13:00:01.123456789Z",
        "output_fields": {"container.id": "ee97d9c4186f", "fd.name": "/etc/shadow", "k8s.ns.name": "default",
                          "k8s.pod.name": "web-2", "evt.time": 1.7e18, "proc.pid": 4242, "user.loginuid": -1},
        "source": "syscall", "tags": ["filesystem", "mitre_credential_access"], "hostname": "node-1"},
        separators=(",", ":"))


def config(nats_url, slack, alerts, extra=""):
    return f"""
nats: {{servers: [{nats_url}]}}
http:
  listen: "127.0.0.1:0"
  alerts: {alerts}
playbooks:
  shell: {{type: slack, webhook_url: "{slack.url('/shell')}"}}
  critical: {{type: slack, webhook_url: "{slack.url('/critical')}"}}
topics:
  {SHELL}: [shell]
  "falco.critical.>": [critical]
{extra}"""


def port_of(pbd, msg):
    return int(pbd.wait_logged(msg)[0]["port"])


def start(text):
    pbd = Playbookd(text)
    pbd.wait_ready()
    return pbd, port_of(pbd, "http alerts listening")


def post(port, body, token=TOKEN, path="/", method="POST", headers=None, context=None, chunked=False):
    """(status, headers, parsed JSON answer) of one request to the alert input."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = body.encode() if isinstance(body, str) else body
        if chunked:
            data = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        conn.request(method, path, body=data, headers=h, encode_chunked=chunked)
        r = conn.getresponse()
        raw = r.read()
        return r.status, dict(r.getheaders()), json.loads(raw) if raw else None
    finally:
        conn.close()


def headers_only(port, head):
    """The answer to a request whose body is announced but never sent: refused on its headers alone."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        return sock.recv(4096)


def metric(port, result):
    _, text = http_get(port, "/metrics")
    prefix = f'playbookd_http_alerts_total{{result="{result}"}} '
    return float(next(l for l in text.splitlines() if l.startswith(prefix))[len(prefix):])


def test_falco_and_falcosidekick_bodies_and_a_batch_reach_their_playbooks(nats, slack):
    pbd, port = start(config(nats.url, slack, f'{{listen: "127.0.0.1:0", token: "{TOKEN}"}}'))
    probes = port_of(pbd, "http listening")
    try:
        assert post(port, falco_http_output_body())[::2] == (200, {"accepted": 1})
        wait_until(lambda: len(slack.received("/shell")) == 1, what="Falco's body reached the shell playbook")
        assert post(port, falcosidekick_webhook_body(), method="PUT")[::2] == (200, {"accepted": 1})
        wait_until(lambda: len(slack.received("/critical")) == 1, what="falcosidekick's reached critical")
        batch = "\n".join([falco_http_output_body(), "", falcosidekick_webhook_body() + "\r",
                           falco_http_output_body()]) + "\n"
        assert post(port, batch)[::2] == (200, {"accepted": 3})
        wait_until(lambda: len(slack.received("/shell")) == 3 and len(slack.received("/critical")) == 2,
                   what="the batch reached its playbooks")
        assert "web-2" in json.dumps(slack.received("/critical")[0])
        assert metric(probes, "accepted") == 5
        assert pbd.logged("action", subject="falco.critical.read_sensitive_file_untrusted")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_token_size_path_method_and_bad_lines(nats, slack):
    pbd, port = start(config(nats.url, slack, f'{{listen: "127.0.0.1:0", path: /falco, token: "{TOKEN}"}}'))
    probes = port_of(pbd, "http listening")
    body = falco_http_output_body()
    try:
        for token in (None, "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]):
            status, headers, answer = post(port, body, token=token, path="/falco")
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), (token, status, answer)
        assert post(port, body, token=None, path="/falco", headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
        assert metric(probes, "unauthorized") == 5
        assert TOKEN not in open(pbd.log_path).read()
        assert post(port, body, path="/")[0] == 404
        status, headers, _ = post(port, "", path="/falco", method="GET")
        assert status == 405 and headers["Allow"] == "POST, PUT"
        assert headers_only(port, f"POST /falco HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                                  f"Content-Length: {1024 * 1024 + 1}\r\n\r\n").startswith(b"HTTP/1.1 413 ")
        big = json.dumps({"rule": "x", "priority": "Notice", "output": "a" * (1024 * 1024)})
        assert post(port, big, path="/falco", chunked=True)[0] == 413  # no length told: read, then refused
        assert metric(probes, "too_large") == 2
        lines = [body, body, "{not json", body, body]
        status, _, answer = post(port, "\n".join(lines), path="/falco")
        assert status == 400 and answer["accepted"] == 2 and answer["error"].startswith("line 3: "), answer
        status, _, answer = post(port, '{"priority": "Notice"}', path="/falco")
        assert status == 400 and answer["accepted"] == 0 and "rule" in answer["error"], answer
        assert post(port, "\n\n", path="/falco")[0] == 400
        wait_until(lambda: len(slack.received("/shell")) == 2, what="the two lines before the bad one")
        assert pbd.logged("rejected", origin="http")
        assert http_get(probes, "/healthz")[0] == 200  # the probes stay unauthenticated, on their own port
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


def test_a_full_queue_answers_503_with_retry_after(nats, slack):
    slack.delay = 3.0  # the one worker is held by the first alert, the queue (1) by the second
    pbd, port = start(config(nats.url, slack, f'{{listen: "127.0.0.1:0", token: "{TOKEN}"}}',
                             "workers: 1\nqueue_size: 1\n"))
    probes = port_of(pbd, "http listening")
    try:
        answers = []
        for _ in range(6):
            answers.append(post(port, falco_http_output_body()))
            if answers[-1][0] == 503:
                break
        status, headers, answer = answers[-1]
        assert status == 503, [a[0] for a in answers]
        assert headers["Retry-After"] == "1" and answer == {"accepted": 0, "error": "line 1: the queue is full"}
        assert all(a[0] == 200 for a in answers[:-1])
        status, _, answer = post(port, "\n".join([falco_http_output_body()] * 3))
        assert status == 503 and answer["accepted"] < 3, answer
        assert metric(probes, "busy") == 2
        assert http_get(probes, "/healthz")[0] == 200
    finally:
        slack.delay = 0
        pbd.stop()
        pbd.cleanup()


# -- mTLS ---------------------------------------------------------------------------------------------

@pytest.fixture
def pki(tmp_path):
    """A CA for the clients and the server, a client it signed, and a client signed by another CA."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(5)]
    ca = make_certificate("alerts-ca", keys[0])
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = make_certificate("playbookd", keys[1], ca, keys[0], ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client = make_certificate("falco", keys[2], ca, keys[0], ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_ca = make_certificate("rogue-ca", keys[3])
    rogue = make_certificate("falco", keys[4], rogue_ca, keys[3], ExtendedKeyUsageOID.CLIENT_AUTH)
    d = str(tmp_path)
    files = {"ca": write_file(d, "ca.crt", cert_pem(ca)), "cert": write_file(d, "server.crt", cert_pem(server)),
             "key": write_file(d, "server.key", key_pem(keys[1]), 0o600),
             "client_cert": write_file(d, "client.crt", cert_pem(client)),
             "client_key": write_file(d, "client.key", key_pem(keys[2]), 0o600),
             "rogue_cert": write_file(d, "rogue.crt", cert_pem(rogue)),
             "rogue_key": write_file(d, "rogue.key", key_pem(keys[4]), 0o600)}
    return files


def client_context(pki, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def test_mtls_takes_a_client_certificate_signed_by_client_ca_and_refuses_the_others(nats, slack, pki):
    tls = f'{{cert: {pki["cert"]}, key: {pki["key"]}, client_ca: {pki["ca"]}}}'
    pbd, port = start(config(nats.url, slack, f'{{listen: "0.0.0.0:0", tls: {tls}}}'))  # not loopback: mTLS
    try:
        good = client_context(pki, pki["client_cert"], pki["client_key"])
        assert post(port, falco_http_output_body(), token=None, context=good)[::2] == (200, {"accepted": 1})
        wait_until(lambda: len(slack.received("/shell")) == 1, what="the alert over mTLS")
        for ctx in (client_context(pki), client_context(pki, pki["rogue_cert"], pki["rogue_key"])):
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
                post(port, falco_http_output_body(), token=None, context=ctx)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            post(port, falco_http_output_body(), token=None)  # plain HTTP to the HTTPS port
        assert len(slack.received("/shell")) == 1
        assert pbd.logged("http alerts listening", tls="true", auth="client certificate")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


# -- loopback only without authentication ---------------------------------------------------------------

def test_without_authentication_only_loopback_unless_insecure_which_warns(nats, slack):
    rc, _, err = run_playbookd(config(nats.url, slack, '{listen: "0.0.0.0:0"}'), "--check")
    assert rc == 1 and "playbooks.yaml:5:20:" in err and "not a loopback address" in err, err
    rc, _, err = run_playbookd(config(nats.url, slack, '{listen: "[::]:0", tls: {cert: a, key: b}}'), "--check")
    assert rc == 1 and "not a loopback address" in err, err
    rc, _, err = run_playbookd(config(nats.url, slack, '{listen: "127.0.0.1:0", token: short}'), "--check")
    assert rc == 1 and "at least 16" in err and "short" not in err.split("'token'")[-1], err

    pbd, port = start(config(nats.url, slack, '{listen: "127.0.0.1:0"}'))
    try:
        assert post(port, falco_http_output_body(), token=None)[0] == 200
        assert not pbd.logged("http alerts: insecure: true: no token and no client certificate, anyone who can "
                              "connect can submit alerts")
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
    pbd, port = start(config(nats.url, slack, '{listen: "0.0.0.0:0", insecure: true}'))
    try:
        assert pbd.logged("http alerts: insecure: true: no token and no client certificate, anyone who can "
                          "connect can submit alerts", listen="0.0.0.0:0")
        assert post(port, falco_http_output_body(), token=None)[0] == 200
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()


# -- JetStream ------------------------------------------------------------------------------------------

@pytest.fixture
def jsnats():
    server = NatsServer(jetstream=True)
    yield server
    server.stop()


def js_config(nats, sa):
    return f"""
nats:
  servers: [{nats.url}]
  jetstream:
    stream: FALCO
    create_stream: {{subjects: ["falco.>"], storage: file}}
    ack_wait: 2s
    backoff: [200ms]
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 1}}
http:
  alerts: {{listen: "127.0.0.1:0", token: "{TOKEN}"}}
playbooks:
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
  {SHELL}: [kill]
"""


def test_with_jetstream_an_alert_answered_200_survives_kill_9(kube, incluster, jsnats):
    kube.add_pod("default", "web-1")
    kube.add_fault(method="DELETE", status=503, times=None)  # the first playbookd cannot act
    first, port = start(js_config(jsnats, incluster))
    assert post(port, falco_http_output_body())[::2] == (200, {"accepted": 1})
    assert js_request(jsnats.port, "$JS.API.STREAM.INFO.FALCO")["state"]["messages"] == 1  # stored before 200
    wait_until(lambda: any(r.method == "DELETE" and r.status == 503 for r in kube.requests()),
               what="the first playbookd tried and failed")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert "Sanitizer" not in open(first.log_path, errors="replace").read()
    assert kube.pod("default", "web-1") is not None
    kube.clear_faults()
    second, _ = start(js_config(jsnats, incluster))
    try:
        wait_until(lambda: kube.pod("default", "web-1") is None, timeout=20, what="the alert acted on after restart")
        actions = second.wait_logged("action", outcome="ok")
        assert "web-1" in actions[0]["target"], actions
    finally:
        assert second.stop() == 0
        second.cleanup()
