#!/usr/bin/env python3
"""run.py: the benchmark suite behind `make bench`. Measures playbookd end to end against a real
nats-server and an HTTPS endpoint with a fixed answer delay (nginx, bench/endpoint.py), and the same runs
for the peer a team would write instead (bench/peer: Node.js, nats.js and the official Kubernetes client),
then prints one table of medians. Figures: the endpoint's own ceiling, throughput at 0/1/5/20 ms, CPU per
1,000 alerts, latency publish -> DELETE at a steady rate, the filter path, memory (idle, loaded, flood),
start-up, and falco-nats lines/s.
    make bench                              (everything, about 9 minutes on 2 cores)
    python3 bench/run.py --only throughput  (one group: ceiling throughput latency instructions filter memory
                                             startup falco-nats; --runs N overrides the number of runs)
    python3 bench/run.py --profile          (where playbookd's time goes in a 0 ms run: perf, by library
                                             and by function)
"""

import argparse
import copy
import datetime
import gc
import json
import os
import platform
import re
import shutil
import socket
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
from harness import NatsClient, NatsServer, falco_subject, free_port, http_get, js_request, wait_until  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build", "release"))
PLAYBOOKD = os.path.join(BUILD, "playbookd")
FALCO_NATS = os.path.join(BUILD, "falco-nats")
SAMPLES = os.path.join(ROOT, "..", "shared", "falco-alerts", "public-sample.jsonl")
PEER = os.path.join(HERE, "peer", "peer.js")
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

def bench_alerts(n, ns="bench", stamp=None):
    """n real-shaped alerts (the public sample, in turn), each about a pod of its own, bench-<i>, as
    (subject, payload) pairs."""
    samples = [json.loads(line) for line in open(SAMPLES) if line.strip()]
    out = []
    for i in range(n):
        a = copy.deepcopy(samples[i % len(samples)])
        fields = a.setdefault("output_fields", {})
        fields["k8s.ns.name"], fields["k8s.pod.name"] = ns, f"bench-{i}"
        fields.pop("k8s.pod.uid", None)
        if fields.get("container.id") in (None, "host"):
            fields["container.id"] = "0123456789ab"
        a.pop("source", None) if a.get("source") not in (None, "syscall") else None
        out.append((falco_subject(a), json.dumps(a, separators=(",", ":")).encode()))
    return out


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

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# At least once: a durable pull consumer on a stream created by playbookd (the manifests' setting).
JETSTREAM = ", jetstream: {stream: FALCO, durable: playbookd, create_stream: {subjects: [\"falco.>\"]}}"


def start_playbookd(nats, kubeconfig, dry_run=True, config=CONFIG):
    port = free_port()
    d = tempfile.mkdtemp(prefix="bench-config-")
    path = os.path.join(d, "playbooks.yaml")
    with open(path, "w") as f:
        f.write(config.format(nats=nats.url, kubeconfig=kubeconfig, http=port, jetstream=JETSTREAM if nats.jetstream
                              else "", dry_run="true" if dry_run else "false"))
    p = Proc([PLAYBOOKD, "-c", path, "--log-format", "json"])
    p.http_port = port
    wait_until(lambda: ready(p), timeout=10, interval=0.001, what="playbookd ready")
    return p


def ready(p):
    if p.proc.poll() is not None:
        raise RuntimeError("playbookd exited: " + open(p.log_path).read()[-2000:])
    try:
        return http_get(p.http_port, "/readyz", timeout=1)[0] == 200
    except OSError:
        return False


def start_peer(nats, kubeconfig, concurrency=32, default_agent=False):
    p = Proc(["node", PEER, "--nats", nats.url, "--subject", "falco.>", "--kubeconfig", kubeconfig,
              "--concurrency", str(concurrency), "--dry-run"] + (["--default-agent"] if default_agent else []),
             stdout=subprocess.PIPE)
    line = p.proc.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError("peer did not start: " + open(p.log_path).read()[-2000:])
    return p


RESPONDERS = {"playbookd": start_playbookd, "peer": start_peer,
              "peer-default": lambda nats, kubeconfig: start_peer(nats, kubeconfig, default_agent=True)}


# -- figures ----------------------------------------------------------------------------------------

def throughput_once(who, delay_ms, n=N_ALERTS, jetstream=False):
    """Alerts/s from the first publish to the last DELETE at the endpoint; CPU ms per 1,000 alerts;
    peak RSS (MiB). jetstream: the alerts are stored in a stream that playbookd consumes."""
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(delay_ms), NatsServer(jetstream=jetstream)
    kubeconfig = endpoint.kubeconfig
    p = RESPONDERS[who](nats, kubeconfig)
    try:
        client = NatsClient(nats.port)
        cpu0, start = p.cpu_s(), time.time()
        client.publish_many(alerts, batch=1000)
        wait_until(lambda: endpoint.count() >= n, timeout=600, interval=0.05, what=f"{n} DELETEs ({who})")
        last = max(t for t, _ in endpoint.requests())
        cpu = p.cpu_s() - cpu0
        client.close()
        try:  # Events go out after their DELETE: wait for them, and count those that never came
            wait_until(lambda: endpoint.count("POST") >= n, timeout=10, interval=0.05)
        except AssertionError:
            pass
        return {"rate": n / (last - start), "cpu_ms_per_1000": cpu * 1000 / n * 1000, "peak_mib": p.peak_rss_mib(),
                "events_pct": 100 * endpoint.count("POST") / n}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()


def latency_once(who, rate, seconds):
    """Publish -> DELETE arriving at the endpoint, in ms: p50, p99, max, at a steady rate, after a first
    second (not counted) that opens the connections. The publisher's socket has TCP_NODELAY, as cnats's
    has: with Nagle's algorithm a publish waited for the server's delayed ACK, up to 40 ms."""
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
        wait_until(lambda: endpoint.count() >= n, timeout=120, interval=0.05, what=f"{n} DELETEs")
        client.close()
        lat = sorted((t - sent[i]) * 1000 for t, i in ((t, int(uri.rsplit("-", 1)[1])) for t, uri in
                                                           endpoint.requests()) if i >= warm)
        return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1],
                "achieved": (n - warm) / (sent[-1] - sent[warm])}
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


def filter_alerts(n):
    """Alerts that end before any request: a third in a protected namespace, a third without pod fields
    (host events), a third about one pod already acted on (cooldown)."""
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
    return out


def handled(port):
    """Alerts that reached an outcome, from /metrics: actions (skips included) and cooldown skips."""
    text = http_get(port, "/metrics")[1]
    total = sum(float(m) for m in re.findall(r"^playbookd_actions_total\{[^}]*\} (\S+)$", text, re.M))
    return total + sum(float(m) for m in re.findall(r"^playbookd_cooldown_skipped_total (\S+)$", text, re.M))


def filter_once(n=100000):
    alerts = filter_alerts(n)
    endpoint, nats = Endpoint(0), NatsServer()
    kubeconfig = endpoint.kubeconfig
    p = start_playbookd(nats, kubeconfig, config=FILTER_CONFIG)
    try:
        client = NatsClient(nats.port)
        start = time.monotonic()
        client.publish_many(alerts, batch=2000)
        wait_until(lambda: handled(p.http_port) >= n, timeout=120, interval=0.01, what="filtered alerts")
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
    p = start_playbookd(nats, kubeconfig, config=DEFAULT_LIMITS_CONFIG) if who == "playbookd" \
        else start_peer(nats, kubeconfig)
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


def falco_nats_once(mode, n):
    """Lines/s from a named pipe through falco-nats into NATS, from the first line written to the last
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
    cmd = [FALCO_NATS, "-s", nats.url, "-f", pipe, "--log-format", "json"] + (["--jetstream"] if client else [])
    p = Proc(cmd)
    data = b"".join(payload + b"\n" for _, payload in bench_alerts(n))
    try:
        wait_until(lambda: b'"forwarding"' in open(p.log_path, "rb").read(), timeout=10, what="falco-nats ready")
        start = time.monotonic()
        with open(pipe, "wb") as f:
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
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return (f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}") + unit


def ratio(ours, peer, higher_is_better=True):
    if not ours or not peer:
        return "-"
    return f"{(ours / peer) if higher_is_better else (peer / ours):.1f}x"


def suite(groups, runs):
    """[(figure, goal, playbookd, peer, ratio)] for the groups asked for; prints each row as it comes."""
    rows = []
    r5, r3 = runs or 5, runs or 3

    def row(figure, goal, ours, peer="-", vs="-"):
        rows.append((figure, goal, ours, peer, vs))
        print(f"  {figure}: {ours} | peer {peer} | {vs}", flush=True)

    if "ceiling" in groups:
        for d in DELAYS:
            c = median_of(r3, ceiling_once, d)["rate"]
            row(f"endpoint alone, {d} ms (wrk, 32 connections, req/s)", "the ceiling", fmt(c))
    if "throughput" in groups:
        rates = {}
        for d in DELAYS:
            n = r5 if d <= 1 else r3
            ours = median_of(n, throughput_once, "playbookd", d)
            rates[d] = ours["rate"]
            peer = median_of(r3, throughput_once, "peer", d)
            goal = {0: ">= 15,000", 5: ">= 5,000", 20: ">= 1,400"}.get(d, "")
            row(f"throughput, {d} ms API (alerts/s)", goal, fmt(ours["rate"]), fmt(peer["rate"]),
                ratio(ours["rate"], peer["rate"]))
            row(f"Events recorded in that run (% of alerts)", "100", fmt(ours["events_pct"]), fmt(peer["events_pct"]))
            row(f"peak RSS, throughput {d} ms (MiB)", "< 24", fmt(ours["peak_mib"]), fmt(peer["peak_mib"]),
                ratio(ours["peak_mib"], peer["peak_mib"], False))
            if d == 0:
                row("CPU per 1,000 alerts, 0 ms API (ms, user + sys)", "< 100", fmt(ours["cpu_ms_per_1000"]),
                    fmt(peer["cpu_ms_per_1000"]), ratio(ours["cpu_ms_per_1000"], peer["cpu_ms_per_1000"], False))
        for d in (0, 5):
            plain = median_of(r3, throughput_once, "peer-default", d, 2000)
            row(f"throughput, {d} ms API, the peer with client-node's own agent (a TLS connection per request)",
                "", fmt(rates[d]), fmt(plain["rate"]), ratio(rates[d], plain["rate"]))
        for d in (0, 5):
            js = median_of(r3, throughput_once, "playbookd", d, N_ALERTS, True)
            row(f"throughput, {d} ms API, JetStream at least once (alerts/s)", "", fmt(js["rate"]))
            row(f"peak RSS, throughput {d} ms, JetStream (MiB)", "< 24", fmt(js["peak_mib"]))
    if "latency" in groups:
        for rate, goal in ((1000, "p99 < 0.5"), (5000, "p99 < 2")):
            ours = median_of(r3, latency_once, "playbookd", rate, 5)
            peer = median_of(r3, latency_once, "peer", rate, 5) if rate == 1000 else None
            for k in ("p50", "p99", "max"):
                row(f"latency publish -> DELETE at {rate:,}/s, {k} (ms)", goal if k == "p99" else "",
                    fmt(ours[k]), fmt(peer[k]) if peer else "-", ratio(ours[k], peer[k], False) if peer else "-")
    if "instructions" in groups:
        ours = instructions_once()
        row("instructions per alert, DELETE + Event (callgrind, --replay)", "", fmt(ours["per_alert"]))
    if "filter" in groups:
        ours = median_of(r5, filter_once)
        row("filter path: protected namespace, host event, cooldown (alerts/s)", ">= 300,000", fmt(ours["rate"]))
    if "memory" in groups:
        ours, peer = median_of(r3, memory_once, "playbookd"), median_of(r3, memory_once, "peer")
        row("RSS idle (MiB)", "< 8", fmt(ours["idle_mib"]), fmt(peer["idle_mib"]),
            ratio(ours["idle_mib"], peer["idle_mib"], False))
        row("of which private, not shared libraries (RssAnon, MiB)", "", fmt(ours["idle_private_mib"]),
            fmt(peer["idle_private_mib"]), ratio(ours["idle_private_mib"], peer["idle_private_mib"], False))
        row("peak RSS, flood of 100,000 at 20 ms, default limits (MiB)", "bounded", fmt(ours["flood_mib"]),
            fmt(peer["flood_mib"]), ratio(ours["flood_mib"], peer["flood_mib"], False))
    if "startup" in groups:
        ours, peer = median_of(r5, startup_once, "playbookd"), median_of(r3, startup_once, "peer")
        row("start-up to ready (ms)", "< 50", fmt(ours["ms"]), fmt(peer["ms"]), ratio(ours["ms"], peer["ms"], False))
    if "falco-nats" in groups:
        core = median_of(r5, falco_nats_once, "core", 100000)
        js = median_of(r3, falco_nats_once, "jetstream", 30000)
        row("falco-nats, pipe -> NATS, core (lines/s)", ">= 100,000", fmt(core["rate"]))
        row("falco-nats, pipe -> JetStream, acked (lines/s)", "", fmt(js["rate"]))
    return rows


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


def table(rows, seconds, command):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    head = [f"{datetime.date.today()}, commit {git('rev-parse', '--short', 'HEAD')}"
            f"{' (with local changes)' if git('status', '--porcelain', '--untracked-files=no') else ''}, "
            f"{os.cpu_count()} cores ({cpu}), {platform.platform()}, `{command}`, {seconds / 60:.1f} min",
            "", "| figure | goal | playbookd | peer (Node.js) | playbookd vs peer |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(head + [f"| {' | '.join(r)} |" for r in rows]) + "\n"


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
    rows = suite(args.only or GROUPS, args.runs)
    text = table(rows, time.monotonic() - start, "make bench" if not args.only else " ".join(sys.argv))
    print("\n" + text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
