#!/usr/bin/env python3
"""run.py: the benchmark suite behind `make bench`. Measures playbookd end to end against a real
nats-server and an HTTPS endpoint with a fixed answer delay (nginx, bench/endpoint.py), and the same runs
for the peer a team would write instead (bench/peer: Node.js, nats.js and the official Kubernetes client),
then prints three tables of medians: the endpoint alone (the ceiling), playbookd and the peer side by side,
and what only playbookd has (instructions per alert). Figures: the endpoint's own ceiling, throughput at
0/1/5/20 ms (core NATS and JetStream), CPU per 1,000 alerts, run-queue wait per alert, latency publish ->
DELETE at a steady rate, the filter path, memory (idle, loaded, flood), start-up, and falco-nats lines/s
(against bench/peer/forward.js).
    make bench                              (everything, 9-10 minutes on 2 cores)
    python3 bench/run.py --only throughput  (one group: ceiling throughput latency instructions filter memory
                                             startup falco-nats; --runs N overrides the number of runs)
    python3 bench/run.py --profile          (where playbookd's time goes in a 0 ms run: perf, by library
                                             and by function)
"""

import argparse
import copy
import datetime
import functools
import gc
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

from endpoint import Endpoint  # noqa: E402
from harness import NatsClient, NatsServer, falco_subject, free_port, http_get, wait_until  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build", "release"))
PLAYBOOKD = os.path.join(BUILD, "playbookd")
FALCO_NATS = os.path.join(BUILD, "falco-nats")
SAMPLES = os.path.join(ROOT, "..", "shared", "falco-alerts", "public-sample.jsonl")
PEER = os.path.join(HERE, "peer", "peer.js")
FORWARD = os.path.join(HERE, "peer", "forward.js")
CLK_TCK = os.sysconf("SC_CLK_TCK")
DELAYS = (0, 1, 5, 20)
N_ALERTS = 20000

CONFIG = """
nats: {{servers: ["{nats}"], pending: {{messages: 20000, bytes: 64MiB}}{jetstream}}}
kubernetes: {{kubeconfig: "{kubeconfig}"}}
http: {{listen: "127.0.0.1:{http}"}}
dry_run: {dry_run}
playbooks:
  kill: {{type: delete-pod}}
topics:
  "falco.>": [kill]
"""


# -- alerts -----------------------------------------------------------------------------------------

ALERTS = []  # made once and shared: every run takes the first n (making 100,000 takes 1.5 s)


def bench_alerts(n):
    """n real-shaped alerts (the public sample, in turn), each about a pod of its own, bench/bench-<i>,
    as (subject, payload) pairs."""
    if len(ALERTS) < n:
        samples = [json.loads(line) for line in open(SAMPLES) if line.strip()]
        for i in range(len(ALERTS), n):
            a = copy.deepcopy(samples[i % len(samples)])
            fields = a.setdefault("output_fields", {})
            fields["k8s.ns.name"], fields["k8s.pod.name"] = "bench", f"bench-{i}"
            fields.pop("k8s.pod.uid", None)
            if fields.get("container.id") in (None, "host"):
                fields["container.id"] = "0123456789ab"
            a.pop("source", None) if a.get("source") not in (None, "syscall") else None
            ALERTS.append((falco_subject(a), json.dumps(a, separators=(",", ":")).encode()))
    return ALERTS[:n]


# -- processes --------------------------------------------------------------------------------------

class Proc:
    """A process under measurement: CPU seconds (user + sys) and memory from /proc."""

    def __init__(self, cmd, cwd=None, stdout=subprocess.DEVNULL):
        self.dir = tempfile.mkdtemp(prefix="bench-proc-")
        self.log_path = os.path.join(self.dir, "stderr")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=open(self.log_path, "wb"))

    def cpu_s(self):
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kib(self, key):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def rss_mib(self):
        return self.status_kib("VmRSS") / 1024

    def peak_rss_mib(self):
        return self.status_kib("VmHWM") / 1024

    def runqueue_s(self, select=lambda tid, comm: True):
        """Seconds the selected threads (by thread id and name) spent runnable, waiting on a run queue:
        the second field of /proc/PID/task/TID/schedstat, summed."""
        total, tasks = 0, f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(tasks):
            try:
                with open(f"{tasks}/{tid}/comm") as comm, open(f"{tasks}/{tid}/schedstat") as stat:
                    if select(int(tid), comm.read().strip()):
                        total += int(stat.read().split()[1])
            except OSError:  # the thread ended meanwhile
                pass
        return total / 1e9

    def ready_line(self, what):
        """Waits for the line `ready` on stdout (the peer's processes print it once connected)."""
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            log = open(self.log_path).read()[-2000:]
            self.stop()
            raise RuntimeError(f"{what} did not start: " + log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Playbookd(Proc):
    """playbookd: /readyz says it is ready, /metrics counts the alerts that reached an outcome, and its
    workers are the threads named pb-worker (lib/workers.c)."""

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("playbookd exited: " + open(self.log_path).read()[-2000:])
        try:
            return http_get(self.http_port, "/readyz", timeout=1)[0] == 200
        except OSError:
            return False

    def settled(self):
        return handled(self.http_port)

    def request_thread(self, tid, comm):
        return comm == "pb-worker"


class Peer(Proc):
    """bench/peer/peer.js: prints `ready`, and its counts on SIGUSR2; one thread (the event loop, the
    process's first) sends every request."""

    def settled(self):
        self.proc.send_signal(signal.SIGUSR2)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("peer exited: " + open(self.log_path).read()[-2000:])
        counts = json.loads(line)
        return counts["handled"] + counts["failed"] + counts["skipped"]

    def request_thread(self, tid, comm):
        return tid == self.proc.pid


# Each responder is set up for a kind of run, the same way on both sides. "bench": every alert one DELETE
# and one Event. "filter": alerts that end without a request (protected namespace kube-system, host
# events, a cooldown of an hour per pod). "default-limits": playbookd's default pending limits (the peer
# has none). JetStream whenever the nats-server has it: the stream FALCO on falco.> (file, 24 h), a durable
# pull consumer (explicit acks, ack_wait 30 s, max_deliver 10), 64 alerts in hand.
JETSTREAM = ", jetstream: {stream: FALCO, durable: playbookd, create_stream: {subjects: [\"falco.>\"]}}"
PEER_FLAGS = {"bench": [], "filter": ["--protected", "kube-system", "--cooldown-ms", "3600000"],
              "default-limits": []}


def start_playbookd(nats, kubeconfig, setup="bench"):
    config = {"bench": CONFIG, "filter": FILTER_CONFIG, "default-limits": DEFAULT_LIMITS_CONFIG}[setup]
    port = free_port()
    d = tempfile.mkdtemp(prefix="bench-config-")
    path = os.path.join(d, "playbooks.yaml")
    with open(path, "w") as f:
        f.write(config.format(nats=nats.url, kubeconfig=kubeconfig, http=port, dry_run="true",
                              jetstream=JETSTREAM if nats.jetstream else ""))
    p = Playbookd([PLAYBOOKD, "-c", path, "--log-format", "json"])
    p.http_port = port
    try:
        wait_until(p.ready, timeout=10, interval=0.001, what="playbookd ready")
    except (AssertionError, RuntimeError):
        p.stop()
        raise
    return p


def start_peer(nats, kubeconfig, setup="bench", default_agent=False):
    p = Peer(["node", PEER, "--nats", nats.url, "--subject", "falco.>", "--kubeconfig", kubeconfig,
              "--concurrency", "32", "--dry-run"] + PEER_FLAGS[setup]
             + (["--jetstream", "FALCO"] if nats.jetstream else []) + (["--default-agent"] if default_agent else []),
             stdout=subprocess.PIPE)
    p.ready_line("peer")
    return p


RESPONDERS = {"playbookd": start_playbookd, "peer": start_peer,
              "peer-default": lambda nats, kubeconfig: start_peer(nats, kubeconfig, default_agent=True)}


# -- figures ----------------------------------------------------------------------------------------

def throughput_once(who, delay_ms, n=N_ALERTS, jetstream=False):
    """Alerts/s from the first publish to the last DELETE at the endpoint; CPU ms per 1,000 alerts;
    peak RSS (MiB); run-queue wait per alert (ms), of all threads and of the threads that send the
    DELETEs. jetstream: the alerts are stored in a stream that the responder consumes."""
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(delay_ms), NatsServer(jetstream=jetstream)
    kubeconfig = endpoint.kubeconfig
    p = RESPONDERS[who](nats, kubeconfig)
    try:
        client = NatsClient(nats.port)
        cpu0, runq0, req_runq0 = p.cpu_s(), p.runqueue_s(), p.runqueue_s(p.request_thread)
        start = time.time()
        client.publish_many(alerts, batch=1000)
        wait_until(lambda: endpoint.count() >= n, timeout=600, interval=0.05, what=f"{n} DELETEs ({who})")
        last = max(t for t, _ in endpoint.requests())
        cpu, runq, req_runq = p.cpu_s() - cpu0, p.runqueue_s() - runq0, p.runqueue_s(p.request_thread) - req_runq0
        client.close()
        try:  # Events go out after their DELETE: wait for them, and count those that never came
            wait_until(lambda: endpoint.count("POST") >= n, timeout=10, interval=0.05)
        except AssertionError:
            pass
        return {"rate": n / (last - start), "cpu_ms_per_1000": cpu * 1000 / n * 1000, "peak_mib": p.peak_rss_mib(),
                "events_pct": 100 * endpoint.count("POST") / n, "runq_ms": runq * 1000 / n,
                "request_runq_ms": req_runq * 1000 / n}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()


LATENCY_DRAIN_S = 20  # how long a responder that fell behind has to catch up after the last publish


def latency_once(who, rate, seconds):
    """Publish -> DELETE arriving at the endpoint, in ms: p50, p99, max, at a steady rate, after a first
    second (not counted) that opens the connections. The publisher's socket has TCP_NODELAY, as cnats's
    has: with Nagle's algorithm a publish waited for the server's delayed ACK, up to 40 ms. A responder
    slower than the rate falls behind: its DELETEs are waited for at most LATENCY_DRAIN_S after the last
    publish, and the figures say how many had arrived by the last publish (on_time_pct), how many had
    not (backlog) and how many never came (missing; counted in the percentiles at the wait's end, as
    lower bounds)."""
    warm = rate
    n = warm + int(rate * seconds)
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(0, microseconds=True), NatsServer()
    kubeconfig = endpoint.kubeconfig
    p = RESPONDERS[who](nats, kubeconfig)
    try:
        client = NatsClient(nats.port)
        frames = [b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload) for subject, payload in alerts]
        sent = [0.0] * n
        gc.disable()  # a collection between the clock and the send would count against the responder
        start, i = time.time(), 0
        while i < n:  # what is due, each on its own, then a short sleep: paced without spinning a core
            due = min(n, int((time.time() - start) * rate) + 1)
            for i in range(i, due):
                sent[i] = time.time()
                client.sock.sendall(frames[i])
            i = due
            time.sleep(0.0002)
        gc.enable()
        try:
            wait_until(lambda: endpoint.count() >= n, timeout=LATENCY_DRAIN_S, interval=0.05)
        except AssertionError:
            pass
        end = time.time()
        client.close()
        arrived = {int(uri.rsplit("-", 1)[1]): t for t, uri in endpoint.requests()}
        counted = range(warm, n)
        lat = sorted((arrived.get(i, end) - sent[i]) * 1000 for i in counted)
        on_time = sum(1 for i in counted if arrived.get(i, end) <= sent[-1])
        return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1],
                "on_time_pct": 100 * on_time / len(counted), "backlog": len(counted) - on_time,
                "missing": sum(1 for i in counted if i not in arrived),
                "achieved": len(counted) / (sent[-1] - sent[warm])}
    finally:
        gc.enable()
        p.stop()
        nats.stop()
        endpoint.stop()


FILTER_CONFIG = """
nats: {{servers: ["{nats}"], pending: {{messages: 200000, bytes: 512MiB}}}}
kubernetes: {{kubeconfig: "{kubeconfig}"}}
http: {{listen: "127.0.0.1:{http}"}}
dry_run: {dry_run}
protected_namespaces: [kube-system]
playbooks:
  kill: {{type: delete-pod, cooldown: 1h}}
topics:
  "falco.>": [kill]
"""


@functools.lru_cache(maxsize=1)
def filter_alerts(n):
    """Alerts that end before any request: a third in a protected namespace, a third without pod fields
    (host events), a third about one pod already acted on (cooldown). Made once (cached)."""
    out = []
    for i, (subject, payload) in enumerate(bench_alerts(n)):
        a = json.loads(payload)
        f = a["output_fields"]
        if i % 3 == 0:
            f["k8s.ns.name"] = "kube-system"
        elif i % 3 == 1:
            del f["k8s.ns.name"], f["k8s.pod.name"]
            f["container.id"] = "host"
        else:
            f["k8s.pod.name"] = "bench-0"
        out.append((subject, json.dumps(a, separators=(",", ":")).encode()))
    return tuple(out)


def handled(port):
    """Alerts that reached an outcome, from /metrics: the actions, every outcome (skips by cooldown
    included: playbookd_cooldown_skipped_total counts them a second time), one per alert in these
    configs (one playbook)."""
    text = http_get(port, "/metrics")[1]
    return sum(float(m) for m in re.findall(r"^playbookd_actions_total\{[^}]*\} (\S+)$", text, re.M))


def filter_once(who, n=100000):
    """Alerts/s from the first publish until the responder counts them all settled."""
    alerts = filter_alerts(n)
    endpoint, nats = Endpoint(0), NatsServer()
    kubeconfig = endpoint.kubeconfig
    p = RESPONDERS[who](nats, kubeconfig, setup="filter")
    try:
        client = NatsClient(nats.port)
        start = time.monotonic()
        client.publish_many(alerts, batch=2000)
        wait_until(lambda: p.settled() >= n, timeout=120, interval=0.01, what=f"filtered alerts ({who})")
        rate = n / (time.monotonic() - start)
        client.close()
        return {"rate": rate, "peak_mib": p.peak_rss_mib()}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()


DEFAULT_LIMITS_CONFIG = CONFIG.replace(", pending: {{messages: 20000, bytes: 64MiB}}", "")


def memory_once(who):
    """Idle RSS a second after start-up, and peak RSS in a flood of 100,000 alerts against the 20 ms
    endpoint (playbookd with its default pending limits), read 2 s after the last publish."""
    endpoint, nats = Endpoint(20), NatsServer()
    kubeconfig = endpoint.kubeconfig
    p = RESPONDERS[who](nats, kubeconfig, setup="default-limits")
    try:
        time.sleep(1)
        idle, idle_private = p.rss_mib(), p.status_kib("RssAnon") / 1024
        client = NatsClient(nats.port)
        client.publish_many(bench_alerts(100000), batch=2000)
        time.sleep(2)
        client.close()
        return {"idle_mib": idle, "idle_private_mib": idle_private, "flood_mib": p.peak_rss_mib()}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()


def startup_once(who):
    """Milliseconds from the process start to ready: /readyz 200 (playbookd), `ready` printed (the peer)."""
    endpoint, nats = Endpoint(0), NatsServer()
    kubeconfig = endpoint.kubeconfig
    start = time.monotonic()
    p = RESPONDERS[who](nats, kubeconfig)
    ms = (time.monotonic() - start) * 1000
    p.stop()
    nats.stop()
    endpoint.stop()
    return {"ms": ms}


class MonitoredNats:
    """nats-server with its monitoring port: /varz counts the messages it received (in_msgs)."""

    def __init__(self):
        self.port, self.monitor = free_port(), free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.in_msgs() is not None, timeout=10, what="nats-server monitoring")

    def in_msgs(self):
        try:
            return json.loads(http_get(self.monitor, "/varz", timeout=1)[1])["in_msgs"]
        except (OSError, ValueError):
            return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_forwarder(who, nats_url, pipe, jetstream):
    """falco-nats, or what a team would write instead (bench/peer/forward.js), reading the pipe, once
    it is ready."""
    mode = ["--jetstream"] if jetstream else []
    if who == "falco-nats":
        p = Proc([FALCO_NATS, "-s", nats_url, "-f", pipe, "--log-format", "json"] + mode)
        wait_until(lambda: b'"forwarding"' in open(p.log_path, "rb").read(), timeout=10, what="falco-nats ready")
    else:
        p = Proc(["node", FORWARD, "--nats", nats_url, "--pipe", pipe] + mode, stdout=subprocess.PIPE)
        p.ready_line("forward.js")
    return p


def open_writer(pipe):
    """The write end of a named pipe, once a reader has it open (bounded: a reader that never comes is an
    error, not a hang)."""
    def try_open():
        try:
            return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            return None
    fd = wait_until(try_open, timeout=10, interval=0.01, what="a reader of the pipe")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "wb")


def falco_nats_once(who, mode, n):
    """Lines/s from a named pipe through the forwarder into NATS, from the first line written to the last
    received: core mode counted by the server (/varz), JetStream mode by the stream (falco.>, file)."""
    nats = MonitoredNats() if mode == "core" else NatsServer(jetstream=True)
    d = tempfile.mkdtemp(prefix="bench-pipe-")
    pipe = os.path.join(d, "falco.pipe")
    os.mkfifo(pipe)
    client = None
    if mode == "jetstream":
        client = NatsClient(nats.port)
        answer = client.request("$JS.API.STREAM.CREATE.FALCO", {"name": "FALCO", "subjects": ["falco.>"],
                                                               "storage": "file"})
        assert "error" not in answer, answer
        received = lambda: client.request("$JS.API.STREAM.INFO.FALCO")["state"]["messages"]  # noqa: E731
    else:
        base = nats.in_msgs()
        received = lambda: nats.in_msgs() - base  # noqa: E731
    data = b"".join(payload + b"\n" for _, payload in bench_alerts(n))
    p = start_forwarder(who, nats.url, pipe, jetstream=client is not None)
    try:
        f = open_writer(pipe)
        start = time.monotonic()
        with f:
            f.write(data)
        wait_until(lambda: received() >= n, timeout=120, interval=0.01, what=f"{n} lines received")
        return {"rate": n / (time.monotonic() - start)}
    finally:
        if client:
            client.close()
        p.stop()
        nats.stop()
        shutil.rmtree(d, ignore_errors=True)


def replay_instructions(n):
    """Instructions (callgrind) of `playbookd --replay` over n alerts against the 0 ms endpoint."""
    endpoint = Endpoint(0)
    kubeconfig = endpoint.kubeconfig
    config = os.path.join(endpoint.dir, "replay.yaml")
    with open(config, "w") as f:
        f.write(f'kubernetes: {{kubeconfig: "{kubeconfig}"}}\ndry_run: true\n'
                'playbooks:\n  kill: {type: delete-pod}\ntopics:\n  "falco.>": [kill]\n')
    try:
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={endpoint.dir}/callgrind.out",
                              PLAYBOOKD, "-c", config, "--replay", "-"],
                             input=b"".join(p + b"\n" for _, p in bench_alerts(n)), capture_output=True)
        return int(re.search(rb"Collected : (\d+)", out.stderr)[1])
    finally:
        endpoint.stop()


def instructions_once():
    """Instructions per alert (a DELETE and its Event, the log line, the parse), counted by callgrind:
    the same on every run, so a change's effect shows through this machine's noise. The difference
    between 400 and 100 alerts, so that start-up and the TLS handshakes cancel out."""
    return {"per_alert": (replay_instructions(400) - replay_instructions(100)) / 300}


# -- the suite --------------------------------------------------------------------------------------

def median_of(runs, fn, *args):
    """Each field of fn's result as the median over runs."""
    results = [fn(*args) for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def ceiling_once(delay_ms):
    endpoint = Endpoint(delay_ms)
    try:
        return {"rate": endpoint.ceiling(seconds=2)}
    finally:
        endpoint.stop()


def fmt(value, unit=""):
    if isinstance(value, str):
        return value
    return (f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}") + unit


def ratio(ours, peer, higher_is_better=True):
    if not ours or not peer:
        return "-"
    r = (ours / peer) if higher_is_better else (peer / ours)
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x"


# The three tables: the endpoint alone (no responder: the ceiling), playbookd and the peer side by side
# (every row has both figures and their ratio), and what only playbookd has, with the reason.
TABLES = {
    "endpoint": ("The endpoint alone: the ceiling of the throughput runs", ("figure", "req/s")),
    "compare": ("playbookd and the peer", ("figure", "goal", "playbookd", "peer (Node.js)", "playbookd vs peer")),
    "ours": ("playbookd only", ("figure", "goal", "playbookd", "why no peer figure")),
}
NOT_CALLGRIND = "the peer's JavaScript is compiled as it runs (V8's JIT): callgrind would count the compiler"


def falls_behind(latency):
    """A note for a latency figure whose responder did not keep up with the rate (1% of the alerts or more
    had not arrived by the last publish)."""
    return " (falls behind)" if latency["on_time_pct"] < 99 else ""


def backlog_note(latency):
    missing = f", {latency['missing']:,.0f} not in {LATENCY_DRAIN_S} s more" if latency["missing"] else ""
    return f" (backlog {latency['backlog']:,.0f}{missing})"


def suite(groups, runs):
    """{table: [row]} for the groups asked for (TABLES); prints each row as it comes."""
    tables = {name: [] for name in TABLES}
    r5, r3 = runs or 5, runs or 3

    def add(name, *cells):
        tables[name].append(cells)
        print(f"  {' | '.join(cells)}", flush=True)

    def compare(figure, goal, ours, peer, higher_is_better=True, notes=("", "")):
        add("compare", figure, goal, fmt(ours) + notes[0], fmt(peer) + notes[1], ratio(ours, peer, higher_is_better))

    def both(runs_ours, runs_peer, fn, *args):
        return median_of(runs_ours, fn, "playbookd", *args), median_of(runs_peer, fn, "peer", *args)

    if "ceiling" in groups:
        for d in DELAYS:
            add("endpoint", f"endpoint alone, {d} ms (wrk, 32 connections, req/s)",
                fmt(median_of(r3, ceiling_once, d)["rate"]))
    if "throughput" in groups:
        rates = {}
        for d in DELAYS:
            ours, peer = both(r5 if d <= 1 else r3, r3, throughput_once, d)
            rates[d] = ours["rate"]
            goal = {0: ">= 15,000", 5: ">= 5,000", 20: ">= 1,400"}.get(d, "")
            compare(f"throughput, {d} ms API (alerts/s)", goal, ours["rate"], peer["rate"])
            compare("Events recorded in that run (% of alerts)", "100", ours["events_pct"], peer["events_pct"])
            compare(f"peak RSS, throughput {d} ms (MiB)", "< 24", ours["peak_mib"], peer["peak_mib"], False)
            if d == 0:
                compare("CPU per 1,000 alerts, 0 ms API (ms, user + sys)", "< 100", ours["cpu_ms_per_1000"],
                        peer["cpu_ms_per_1000"], False)
            if d == 5:
                compare("run-queue wait per alert, 5 ms API, all threads (ms, schedstat)", "", ours["runq_ms"],
                        peer["runq_ms"], False)
                compare("run-queue wait per alert, 5 ms API, the threads that send the DELETEs: playbookd's "
                        "workers, the peer's event loop (ms)", "", ours["request_runq_ms"], peer["request_runq_ms"],
                        False)
        for d in (0, 5):
            plain = median_of(r3, throughput_once, "peer-default", d, 2000)
            compare(f"throughput, {d} ms API, the peer with client-node's own agent (a TLS connection per request)",
                    "", rates[d], plain["rate"])
        for d in (0, 5):
            ours, peer = both(r3, r3, throughput_once, d, N_ALERTS, True)
            compare(f"throughput, {d} ms API, JetStream at least once (alerts/s)", "", ours["rate"], peer["rate"])
            compare(f"peak RSS, throughput {d} ms, JetStream (MiB)", "< 24", ours["peak_mib"], peer["peak_mib"], False)
            if d == 0:
                compare("CPU per 1,000 alerts, 0 ms API, JetStream (ms, user + sys)", "", ours["cpu_ms_per_1000"],
                        peer["cpu_ms_per_1000"], False)
    if "latency" in groups:
        for rate, goal in ((1000, "p99 < 0.5"), (5000, "p99 < 2")):
            ours, peer = both(r3, r3, latency_once, rate, 5)
            notes = (falls_behind(ours), falls_behind(peer))
            for k in ("p50", "p99", "max"):
                compare(f"latency publish -> DELETE at {rate:,}/s, {k} (ms)", goal if k == "p99" else "", ours[k],
                        peer[k], False, notes)
            compare(f"DELETEs at the endpoint by the last publish at {rate:,}/s (% of alerts)", "",
                    ours["on_time_pct"], peer["on_time_pct"], True, (backlog_note(ours), backlog_note(peer)))
    if "instructions" in groups:
        add("ours", "instructions per alert, DELETE + Event (callgrind, --replay)", "",
            fmt(instructions_once()["per_alert"]), NOT_CALLGRIND)
    if "filter" in groups:
        ours, peer = both(r5, r3, filter_once)
        compare("filter path: protected namespace, host event, cooldown (alerts/s)", ">= 300,000", ours["rate"],
                peer["rate"])
    if "memory" in groups:
        ours, peer = both(r3, r3, memory_once)
        compare("RSS idle (MiB)", "< 8", ours["idle_mib"], peer["idle_mib"], False)
        compare("of which private, not shared libraries (RssAnon, MiB)", "", ours["idle_private_mib"],
                peer["idle_private_mib"], False)
        compare("peak RSS, flood of 100,000 at 20 ms, default limits (MiB)", "bounded", ours["flood_mib"],
                peer["flood_mib"], False)
    if "startup" in groups:
        ours, peer = both(r5, r3, startup_once)
        compare("start-up to ready (ms)", "< 50", ours["ms"], peer["ms"], False)
    if "falco-nats" in groups:
        for mode, n, what, goal in (("core", 100000, "NATS, core", ">= 100,000"),
                                    ("jetstream", 30000, "JetStream, acked", "")):
            ours = median_of(r5 if mode == "core" else r3, falco_nats_once, "falco-nats", mode, n)
            peer = median_of(r3, falco_nats_once, "forward.js", mode, n)
            compare(f"falco-nats, pipe -> {what} (lines/s; the peer: forward.js)", goal, ours["rate"], peer["rate"])
    return tables


def profile(delay_ms=0, n=N_ALERTS):
    """perf record (cpu-clock, 2 kHz) of playbookd through one 0 ms throughput run; prints where the time
    goes by library and by function."""
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(delay_ms), NatsServer()
    kubeconfig = endpoint.kubeconfig
    p = start_playbookd(nats, kubeconfig)
    data = os.path.join(p.dir, "perf.data")
    perf = subprocess.Popen(["perf", "record", "-F", "2000", "-e", "cpu-clock"] + os.environ.get("PERF_EXTRA", "").split() + ["-o", data, "-p", str(p.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        client = NatsClient(nats.port)
        start = time.time()
        client.publish_many(alerts, batch=1000)
        wait_until(lambda: endpoint.count() >= n, timeout=600, interval=0.05, what=f"{n} DELETEs")
        print(f"profile: {n} alerts at {delay_ms} ms, {n / (time.time() - start):,.0f} alerts/s")
        client.close()
    finally:
        perf.send_signal(2)
        perf.wait()
        if os.environ.get("PERF_KEEP"):
            shutil.copy(data, os.environ["PERF_KEEP"])
        for sort in ("dso", "dso,sym"):
            out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "-g", "none",
                                  "--percent-limit", "0.7"], capture_output=True, text=True).stdout
            print("\n".join(l for l in out.splitlines() if l.strip() and not l.startswith("#")))
        p.stop()
        nats.stop()
        endpoint.stop()


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def table(tables, seconds, command):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = [f"{datetime.date.today()}, commit {git('rev-parse', '--short', 'HEAD')}"
             f"{' (with local changes)' if git('status', '--porcelain', '--untracked-files=no') else ''}, "
             f"{os.cpu_count()} cores ({cpu}), {platform.platform()}, `{command}`, {seconds / 60:.1f} min"]
    for name, (title, columns) in TABLES.items():
        if tables[name]:
            lines += ["", f"{title}:", "", f"| {' | '.join(columns)} |", "|" + " --- |" * len(columns)]
            lines += [f"| {' | '.join(r)} |" for r in tables[name]]
    return "\n".join(lines) + "\n"


GROUPS = ("ceiling", "throughput", "latency", "instructions", "filter", "memory", "startup", "falco-nats")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=GROUPS, help="run only this group (repeatable)")
    ap.add_argument("--runs", type=int, help="runs per figure (default: 5, 3 for the slow ones)")
    ap.add_argument("--table", help="also write the table to this file")
    ap.add_argument("--profile", action="store_true", help="only profile playbookd (perf) in a 0 ms run")
    args = ap.parse_args()
    if args.profile:
        return profile()
    for tool in ("nginx", "wrk", "node", "nats-server"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"bench: {tool} is missing: run `bash bench/install-deps.sh`")
    start = time.monotonic()
    tables = suite(args.only or GROUPS, args.runs)
    command = "make bench" if not (args.only or args.runs) else " ".join(sys.argv)
    text = table(tables, time.monotonic() - start, command)
    print("\n" + text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
