#!/usr/bin/env python3
"""e2e.py: end-to-end throughput and memory of the pipeline NATS -> playbookd (parse, match, dispatch,
one log line per action), with a playbook that decides without I/O (a slack playbook whose min_priority
skips every alert), so that the number is playbookd's own, not a fake server's. Publishes N alerts on a
real nats-server as fast as a socket allows, waits until /metrics counts N actions, and reports alerts/s
and playbookd's peak RSS, for several runs and their median.
    make bench            (or: PLAYBOOKD=build/release/playbookd python3 bench/e2e.py [N] [RUNS])
"""

import os
import re
import socket
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import NatsServer, Playbookd, http_get, wait_until  # noqa: E402

CONFIG = """
nats: {{servers: [{url}]}}
http: {{listen: "127.0.0.1:0"}}
playbooks:
  quiet: {{type: slack, webhook_url: "http://127.0.0.1:9/unused", min_priority: Emergency}}
topics:
  "falco.*.*": [quiet]
  falco.notice.terminal_shell_in_container: [quiet]
"""


def actions(port):
    text = http_get(port, "/metrics")[1]
    return sum(float(m) for m in re.findall(r'^playbookd_actions_total\{[^}]*\} (\S+)$', text, re.M))


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read())[1])


def run_once(n, alert, subject):
    nats = NatsServer()
    pbd = Playbookd(CONFIG.format(url=nats.url))
    try:
        pbd.wait_ready()
        port = int(pbd.wait_logged("http listening")[0]["port"])
        sock = socket.create_connection(("127.0.0.1", nats.port))
        sock.recv(4096)
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        frame = b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(alert), alert)
        batch = frame * 500
        start = time.monotonic()
        for _ in range(n // 500):
            sock.sendall(batch)
        wait_until(lambda: actions(port) >= n, timeout=120, interval=0.01, what=f"{n} actions")
        elapsed = time.monotonic() - start
        rss = peak_rss_kib(pbd.proc.pid)
        sock.close()
        return n / elapsed, rss
    finally:
        pbd.stop()
        pbd.cleanup()
        nats.stop()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with open(os.path.join(ROOT, "examples", "alerts.jsonl"), "rb") as f:
        alert = f.readlines()[1].rstrip(b"\n")  # a Notice terminal shell: two patterns match
    rates, rss = [], []
    for r in range(runs):
        rate, kib = run_once(n, alert, "falco.notice.terminal_shell_in_container")
        rates.append(rate)
        rss.append(kib)
        print(f"run {r + 1}: {rate:,.0f} alerts/s, peak RSS {kib / 1024:.1f} MiB")
    print(f"median: {statistics.median(rates):,.0f} alerts/s, peak RSS {statistics.median(rss) / 1024:.1f} MiB "
          f"({n} alerts of {len(alert)} bytes per run, {runs} runs, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
