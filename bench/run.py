#!/usr/bin/env python3
"""run.py: the benchmark suite behind `make bench`. Measures playbookd end to end against a real
nats-server and an HTTPS endpoint with a fixed answer delay (nginx, bench/endpoint.py), and the same runs
for the peer a team would write instead (bench/peer: Node.js, nats.js and the official Kubernetes client),
then prints one table of medians. Figures: the endpoint's own ceiling, throughput at 0/1/5/20 ms, CPU per
1,000 alerts, latency publish -> DELETE at a steady rate, the filter path, memory (idle, loaded, flood),
start-up, and falco-nats lines/s.
    make bench                              (everything, about 8 minutes on 2 cores)
    python3 bench/run.py --only throughput  (one group: ceiling throughput latency filter memory startup
                                             falco-nats; --runs N overrides the number of runs)
"""

import argparse
import copy
import datetime
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
nats: {{servers: ["{nats}"], pending: {{messages: 20000, bytes: 64MiB}}}}
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


def start_playbookd(nats, kubeconfig, dry_run=True, config=CONFIG):
    port = free_port()
    d = tempfile.mkdtemp(prefix="bench-config-")
    path = os.path.join(d, "playbooks.yaml")
    with open(path, "w") as f:
        f.write(config.format(nats=nats.url, kubeconfig=kubeconfig, http=port,
                              dry_run="true" if dry_run else "false"))
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


def start_peer(nats, kubeconfig, concurrency=32):
    p = Proc(["node", PEER, "--nats", nats.url, "--subject", "falco.>", "--kubeconfig", kubeconfig,
              "--concurrency", str(concurrency), "--dry-run"], stdout=subprocess.PIPE)
    line = p.proc.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError("peer did not start: " + open(p.log_path).read()[-2000:])
    return p


RESPONDERS = {"playbookd": start_playbookd, "peer": start_peer}


# -- figures ----------------------------------------------------------------------------------------

def throughput_once(who, delay_ms, n=N_ALERTS):
    """Alerts/s from the first publish to the last DELETE at the endpoint; CPU ms per 1,000 alerts;
    peak RSS (MiB)."""
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(delay_ms), NatsServer()
    kubeconfig = endpoint.write_kubeconfig(os.path.join(endpoint.dir, "kubeconfig"))
    p = RESPONDERS[who](nats, kubeconfig)
    try:
        client = NatsClient(nats.port)
        cpu0, start = p.cpu_s(), time.time()
        client.publish_many(alerts, batch=1000)
        wait_until(lambda: endpoint.count() >= n, timeout=600, interval=0.05, what=f"{n} DELETEs ({who})")
        last = max(t for t, _ in endpoint.requests())
        cpu = p.cpu_s() - cpu0
        client.close()
        return {"rate": n / (last - start), "cpu_ms_per_1000": cpu * 1000 / n * 1000, "peak_mib": p.peak_rss_mib()}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()


def latency_once(who, rate, seconds):
    """Publish -> DELETE arriving at the endpoint, in ms: p50, p99, max, at a steady rate."""
    n = int(rate * seconds)
    alerts = bench_alerts(n)
    endpoint, nats = Endpoint(0, microseconds=True), NatsServer()
    kubeconfig = endpoint.write_kubeconfig(os.path.join(endpoint.dir, "kubeconfig"))
    p = RESPONDERS[who](nats, kubeconfig)
    try:
        client = NatsClient(nats.port)
        sent = [0.0] * n
        start = time.time()
        for i, (subject, payload) in enumerate(alerts):
            due = start + i / rate
            while True:
                now = time.time()
                if now >= due:
                    break
                if due - now > 0.0003:
                    time.sleep(due - now - 0.0002)
            sent[i] = time.time()
            client.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))
        wait_until(lambda: endpoint.count() >= n, timeout=120, interval=0.05, what=f"{n} DELETEs")
        client.close()
        lat = sorted((t - sent[int(uri.rsplit("-", 1)[1])]) * 1000 for t, uri in endpoint.requests())
        return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "max": lat[-1],
                "achieved": n / (sent[-1] - sent[0])}
    finally:
        p.stop()
        nats.stop()
        endpoint.stop()
