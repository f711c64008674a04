"""harness.py: real parts for integration tests: a nats-server on a free loopback port, a raw NATS
publisher (the protocol is a few text lines), a fake Slack incoming webhook that records what it got,
and playbookd itself as a child process with JSON logs. Standard library only."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "..", "shared", "falco-alerts", "public-sample.jsonl")
PLAYBOOKD = os.environ.get("PLAYBOOKD", os.path.join(ROOT, "build", "release", "playbookd"))
RELEASE_PLAYBOOKD = os.path.join(ROOT, "build", "release", "playbookd")  # for memory figures: no sanitizer
FALCO_NATS = os.environ.get("FALCO_NATS", os.path.join(ROOT, "build", "release", "falco-nats"))

PRIORITIES = ["emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sample_lines():
    with open(SAMPLES, "rb") as f:
        return [line.rstrip(b"\n") for line in f if line.strip()]


# The end of a --replay result line: the topic or rule that brought the action.
REPLAY_VIA = re.compile(r' via (topic|rule) "((?:[^"\\]|\\.)*)"$')


def split_via(line):
    """'line 1: S -> P: ok via topic "falco.>"' -> ('line 1: S -> P: ok', 'topic', 'falco.>')."""
    m = REPLAY_VIA.search(line)
    assert m, f"no 'via topic/rule' at the end of the replay line {line!r}"
    return line[:m.start()], m[1], m[2]


def strip_via(line):
    return split_via(line)[0]


def falco_subject(alert):
    """falco.<priority>.<slug>, written independently of the C code, from GUIDE.md section 2."""
    p = alert["priority"]
    if isinstance(p, int):
        token = PRIORITIES[p]  # Falco's gRPC enum
    else:
        token = "informational" if p.lower() == "info" else p.lower()
    slug = re.sub(r"[^a-z0-9]+", "_", alert["rule"].lower()).strip("_")
    return f"falco.{token}.{slug}"


class NatsServer:
    """A real nats-server on a free loopback port; max_payload raised so oversize alerts reach playbookd.
    jetstream=True: JetStream on, stored in a temp dir that survives kill() and start(). extra_conf is
    appended to the config file (an authorization block), env added to the server's environment."""

    def __init__(self, max_payload=4 * 1024 * 1024, token=None, port=None, start=True, jetstream=False,
                 extra_conf="", env=None):
        self.dir = tempfile.mkdtemp(prefix="nats-")
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "nats.conf")
        with open(self.conf, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\nmax_payload: {max_payload}\n")
            if token:
                f.write(f"authorization {{ token: {token} }}\n")
            if jetstream:
                f.write(f"jetstream {{ store_dir: \"{os.path.join(self.dir, 'js')}\" }}\n")
            f.write(extra_conf)
        self.env = dict(os.environ, **(env or {}))
        self.log = open(os.path.join(self.dir, "nats.log"), "w")
        self.proc = None
        self.jetstream = jetstream
        self.url = f"nats://127.0.0.1:{self.port}"
        if start:
            self.start()

    def start(self):
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.proc = subprocess.Popen([binary, "-c", self.conf], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        wait_until(self._answers, what="nats-server to answer")
        if self.jetstream:
            wait_until(lambda: "Server is ready" in open(os.path.join(self.dir, "nats.log")).read(),
                       what="nats-server JetStream ready")

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=10)

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return s.recv(4096).startswith(b"INFO")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def manifest_nats_auth():
    """The authorization nats-server runs with in manifests/nats.yaml (ConfigMap nats-config, auth.conf),
    and {user: the environment variable it reads that user's password from}."""
    import yaml  # python3-yaml, as the manifest checks use
    with open(os.path.join(ROOT, "manifests", "nats.yaml"), encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    conf = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-config")
    text = conf["data"]["auth.conf"]
    return text, dict(re.findall(r"user:\s*(\w+)\s*\n\s*password:\s*\$(\w+)", text))


def authorized_nats(passwords, conf=None, **kwargs):
    """A NatsServer with the manifest's authorization (or conf, a variant of it) and these passwords
    ({user: password}) in its environment."""
    text, variables = manifest_nats_auth()
    env = {var: passwords[user] for user, var in variables.items()}
    return NatsServer(extra_conf=conf or text, env=env, **kwargs)


class NoResponders(Exception):
    """A request that no service answered (JetStream not enabled, or not ready yet after a restart)."""


class NatsClient:
    """The plain NATS protocol: publishes confirmed by a PING/PONG round trip, and request/reply for the
    JetStream API (headers understood, replies on one inbox subscription)."""

    def __init__(self, port, token=None, user=None, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as cnats: no Nagle delay on a publish
        self.buf = b""
        self.inbox = None
        self.requests = self.sids = 0
        self._line()  # INFO
        connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "name": "test"}
        if token:
            connect["auth_token"] = token
        if user is not None:
            connect.update(user=user, **{"pass": password})
        self._send(b"CONNECT " + json.dumps(connect).encode())

    def _send(self, data):
        self.sock.sendall(data + b"\r\n")

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("nats-server closed the connection")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _payload(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _next(self, until_pong=False):
        """The next message as (subject, headers, payload), or None at a PONG when until_pong."""
        while True:
            line = self._line()
            op, *args = line.split() or [b""]
            if op == b"PING":
                self._send(b"PONG")
            elif op == b"PONG" and until_pong:
                return None
            elif op == b"MSG":
                return args[0].decode(), b"", self._payload(int(args[-1]))
            elif op == b"HMSG":
                data = self._payload(int(args[-1]))
                return args[0].decode(), data[:int(args[-2])], data[int(args[-2]):]
            elif op == b"-ERR":
                raise RuntimeError(line.decode())

    def subscribe(self, subject, queue=None):
        """Subscribes (confirmed; a refusal raises RuntimeError); messages then come from next_message."""
        self.sids += 1
        group = b" " + queue.encode() if queue else b""
        self._send(b"SUB %s%s %d" % (subject.encode(), group, self.sids))
        self.flush()
        return self.sids

    def next_message(self):
        """(subject, headers, payload) of the next message."""
        return self._next()

    def flush(self):
        """A PING/PONG round trip: what was sent before is in effect (late replies are passed over)."""
        self._send(b"PING")
        while self._next(until_pong=True) is not None:
            pass

    def publish(self, subject, payload):
        self.publish_many([(subject, payload)])

    def publish_many(self, messages, batch=500):
        """Publishes (subject, payload) pairs in batches, one round trip per batch: a flood."""
        chunk = []
        for subject, payload in messages:
            if isinstance(payload, str):
                payload = payload.encode()
            chunk.append(b"PUB %s %d\r\n" % (subject.encode(), len(payload)) + payload + b"\r\n")
            if len(chunk) == batch:
                self.sock.sendall(b"".join(chunk))
                self.flush()
                chunk = []
        if chunk:
            self.sock.sendall(b"".join(chunk))
        self.flush()

    def request(self, subject, body=None):
        """The JSON reply to a request; body is sent as JSON (None: empty)."""
        if self.inbox is None:
            self.inbox = "_INBOX." + uuid.uuid4().hex
            self.subscribe(self.inbox + ".*")
        self.requests += 1
        reply = f"{self.inbox}.{self.requests}"
        payload = b"" if body is None else json.dumps(body).encode()
        self._send(b"PUB %s %s %d\r\n" % (subject.encode(), reply.encode(), len(payload)) + payload)
        while True:
            got, headers, data = self._next()
            if got == reply:
                break
        if headers.startswith(b"NATS/1.0 503") or not data:
            raise NoResponders(subject)
        return json.loads(data)

    def close(self):
        self.sock.close()


def js_request(port, subject, body=None):
    """One JetStream API request on a connection of its own."""
    client = NatsClient(port)
    try:
        return client.request(subject, body)
    finally:
        client.close()


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: 64 workers may connect at once (the default, 5, drops SYNs)


class Receiver:
    """An HTTP receiver on a free loopback port, served from a thread, with scripted statuses per path
    (statuses[path]: a list, the last one repeats; default otherwise)."""

    def __init__(self, handler, default_status):
        self.statuses = {}
        self.default_status = default_status
        self.lock = threading.Lock()
        self.server = _ReceiverServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_status(self, path):
        """The status to answer on path (call with the lock held)."""
        script = self.statuses.get(path, [self.default_status])
        return script.pop(0) if len(script) > 1 else script[0]

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class FakeSlack(Receiver):
    """An incoming-webhook receiver: answers "ok" (or scripted statuses per path) and keeps every post."""

    def __init__(self):
        self.posts = []  # (path, parsed JSON body)
        self.delay = 0.0  # seconds to wait before answering, to keep actions in flight
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with slack.lock:
                    status = slack.next_status(self.path)
                    slack.posts.append((self.path, json.loads(body), self.headers.get("Content-Type")))
                time.sleep(slack.delay)
                reply = b"ok" if status == 200 else b"internal_error"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        super().__init__(Handler, 200)

    def received(self, path):
        with self.lock:
            return [body for p, body, _ in self.posts if p == path]


RUNNING = []  # every Process started; conftest stops what a failed test left running


class Process:
    """A child process with JSON logs captured to a file and read as a list of objects."""

    def __init__(self, cmd, env=None, stdin=None):
        RUNNING.append(self)
        self.dir = tempfile.mkdtemp(prefix="playbookd-")
        self.log_path = os.path.join(self.dir, "log.jsonl")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=self.log, env=env)

    def lines(self):
        with open(self.log_path, "rb") as f:
            out = []
            for raw in f:
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    out.append({"msg": "<not json>", "raw": raw.decode(errors="replace")})
            return out

    def logged(self, msg, **fields):
        return [l for l in self.lines() if l.get("msg") == msg and all(l.get(k) == v for k, v in fields.items())]

    def wait_logged(self, msg, timeout=10, **fields):
        return wait_until(lambda: self.logged(msg, **fields), timeout, what=f"log {msg!r}")

    def wait_ready(self, timeout=10):
        wait_until(lambda: self.logged("ready") or self.proc.poll() is not None, timeout, what="playbookd ready")
        assert self.proc.poll() is None, f"playbookd exited: {open(self.log_path).read()}"

    def peak_rss_kib(self):
        """The most resident memory the process has had (VmHWM), in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        self.log.close()
        if rc != 0:  # shown by pytest when the test fails: sanitizer reports end up here
            print(open(self.log_path, errors="replace").read()[-20000:])
        return rc

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self):
        """Stops the process whatever state the test left it in (used after the test)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()
        self.cleanup()


class Playbookd(Process):
    """playbookd with a config written for it."""

    def __init__(self, config_text, *args, env=None, binary=None):
        self.config_dir = tempfile.mkdtemp(prefix="playbookd-config-")
        self.config = os.path.join(self.config_dir, "playbooks.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        super().__init__([binary or PLAYBOOKD, "-c", self.config, "--log-format", "json", *args], env=env)

    def cleanup(self):
        super().cleanup()
        shutil.rmtree(self.config_dir, ignore_errors=True)


class FalcoNats(Process):
    """falco-nats reading a pipe (or stdin with pipe="-")."""

    def __init__(self, nats_url, pipe, *args, env=None, stdin=None):
        super().__init__([FALCO_NATS, "-s", nats_url, "-f", pipe, "--log-format", "json", *args], env=env,
                         stdin=stdin)


def http_get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def run_playbookd(config_text, *args, input_bytes=None, timeout=60):
    """Runs playbookd to completion (--check, --replay); returns (exit status, stdout, stderr)."""
    with tempfile.TemporaryDirectory(prefix="playbookd-") as d:
        path = os.path.join(d, "playbooks.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        p = subprocess.run([PLAYBOOKD, "-c", path, *args], input=input_bytes, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()


def pod_removal_config(sa, options, kind="delete-pod", nats=None, subject="falco.notice.terminal_shell_in_container",
                       queue_group=False):
    """One playbook `kill` of kind (delete-pod, evict-pod) with options on subject, retried twice quickly: the
    config the delete-safety, replica-count and Lease tests share (sa: the service account directory)."""
    servers = f"nats: {{servers: [{nats.url}]{', queue_group: playbookd' if queue_group else ''}}}" if nats else ""
    return f"""
{servers}
kubernetes:
  service_account_dir: {sa}
retry: {{attempts: 2, initial_backoff_ms: 10, max_backoff_ms: 100}}
playbooks:
  kill: {{type: {kind}, {options}}}
topics:
  {subject}: [kill]
"""
