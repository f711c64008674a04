"""endpoint.py: the Kubernetes API stand-in of the benchmarks: Debian's nginx over HTTPS answering a pod
DELETE with a Pod (200) and an Event POST with the Event (201) after a fixed delay (the echo module's
echo_sleep, which serves delayed requests concurrently), with its own CA and a kubeconfig for clients (.kubeconfig).
Every request is logged with its arrival time: milliseconds for the throughput runs ($msec), microseconds
for the latency runs (Time::HiRes through the perl module, read in the log phase, so a few microseconds
after arrival: the latency it gives errs long). ceiling() measures what the endpoint alone serves with
wrk and 32 connections.
"""

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from fake_kube import b64, cert_pem, key_pem, make_certificate, write_file  # noqa: E402
from harness import free_port, wait_until  # noqa: E402

MODULES = "/usr/lib/nginx/modules"
TOKEN = "bench-token"

# What a real API server answers, trimmed to the fields clients read: a DELETE returns the Pod, a create
# returns the Event it stored.
POD = ('{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench","namespace":"bench",'
       '"uid":"3f1c2a4e-8d7b-4c1e-9f6a-2b5d8e7c1a90","resourceVersion":"4242",'
       '"creationTimestamp":"2026-11-30T12:00:00Z","deletionTimestamp":"2026-11-30T12:00:30Z",'
       '"deletionGracePeriodSeconds":0,"labels":{"app":"bench"}},"spec":{"containers":[{"name":"app",'
       '"image":"nginx:1.25"}],"nodeName":"worker-1"},"status":{"phase":"Running"}}')
EVENT = ('{"kind":"Event","apiVersion":"events.k8s.io/v1","metadata":{"name":"playbookd-x7k2p",'
         '"namespace":"bench","uid":"8a2f0c1e-1b3d-4e5f-9a7b-6c8d0e2f4a1b","resourceVersion":"4243",'
         '"creationTimestamp":"2026-11-30T12:00:00Z"},"eventTime":"2026-11-30T12:00:00.000000Z",'
         '"reportingController":"playbookd","reportingInstance":"bench","action":"DeletePod",'
         '"reason":"FalcoAlert","type":"Warning","regarding":{"kind":"Pod","namespace":"bench",'
         '"name":"bench","apiVersion":"v1"},"note":"bench"}')

CONF = """
load_module {modules}/ngx_http_echo_module.so;
{perl_module}
{user}
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  {perl_set}
  log_format bench '{stamp} $request_method $uri';
  access_log {dir}/access.log bench buffer=256k flush=50ms;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} ssl http2;  # as an API server: HTTP/2 by ALPN, HTTP/1.1 for who asks
    ssl_certificate {dir}/server.crt;
    ssl_certificate_key {dir}/server.key;
    ssl_session_cache shared:SSL:1m;
    location ~ ^/api/v1/namespaces/[^/]+/pods/[^/]+$ {{
      default_type application/json;
      {sleep}
      echo -n '{pod}';
    }}
    location ~ ^/apis/events\\.k8s\\.io/v1/namespaces/[^/]+/events$ {{
      default_type application/json;
      echo_read_request_body;  # as an API server does; unread, HTTP/2 resets the stream under the upload
      echo_status 201;
      {sleep}
      echo -n '{event}';
    }}
    location / {{ return 404; }}
  }}
}}
"""


class Endpoint:
    """nginx on a free loopback port answering after delay_ms; microseconds=True logs microsecond
    arrival times (for latency), else millisecond ones (cheaper, for throughput)."""

    def __init__(self, delay_ms, microseconds=False, workers=1):
        self.dir = tempfile.mkdtemp(prefix="bench-endpoint-")
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.delay_ms = delay_ms
        self.log_path = os.path.join(self.dir, "access.log")
        self._make_pki()
        perl = microseconds
        conf = CONF.format(
            modules=MODULES, dir=self.dir, port=self.port, workers=workers, pod=POD, event=EVENT,
            user="user root;" if os.getuid() == 0 else "",
            perl_module=f"load_module {MODULES}/ngx_http_perl_module.so;" if perl else "",
            perl_set=("perl_require Time/HiRes.pm;\n  perl_set $usec "
                      "'sub { return sprintf(\"%.6f\", Time::HiRes::time()); }';") if perl else "",
            stamp="$usec" if perl else "$msec",
            sleep=f"echo_sleep {delay_ms / 1000:.3f};" if delay_ms > 0 else "")
        self.conf = write_file(self.dir, "nginx.conf", conf)
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf, "-e", "stderr"],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "wb"))
        wait_until(self._listening, timeout=10, what="nginx listening")
        self.kubeconfig = self._write_kubeconfig(os.path.join(self.dir, "kubeconfig"))

    def _make_pki(self):
        ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca = make_certificate("bench-ca", ca_key)
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        server = make_certificate("bench-apiserver", server_key, ca, ca_key, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        self.ca_pem = cert_pem(ca)
        self.ca_path = write_file(self.dir, "ca.crt", self.ca_pem)
        write_file(self.dir, "server.crt", cert_pem(server))
        write_file(self.dir, "server.key", key_pem(server_key), 0o600)

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + open(os.path.join(self.dir, "stderr")).read())
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def _write_kubeconfig(self, path):
        """A kubeconfig for clients: this CA, this server, a token user."""
        text = "\n".join([
            "apiVersion: v1", "kind: Config", "clusters:", "- name: bench", "  cluster:",
            f"    certificate-authority-data: {b64(self.ca_pem)}", f"    server: {self.url}",
            "users:", "- name: bench", "  user:", f"    token: {TOKEN}", "contexts:", "- name: bench",
            "  context: {cluster: bench, user: bench}", "current-context: bench"]) + "\n"
        with open(path, "w") as f:
            f.write(text)
        return path

    def requests(self, method="DELETE"):
        """[(arrival time in seconds, uri)] of the logged requests with this method."""
        out = []
        with open(self.log_path) as f:
            for line in f:
                stamp, m, uri = line.split(" ", 2)
                if m == method:
                    out.append((float(stamp), uri.rstrip("\n")))
        return out

    def count(self, method="DELETE"):
        """How many requests with this method are logged (the log is flushed every 50 ms)."""
        pattern = re.compile(r" %s " % method)
        n = 0
        with open(self.log_path) as f:
            for line in f:
                if pattern.search(line):
                    n += 1
        return n

    def reset_log(self):
        """Empties the access log (nginx keeps writing to the same file)."""
        time.sleep(0.1)  # what is buffered is flushed within 50 ms
        open(self.log_path, "w").close()

    def ceiling(self, seconds=5, connections=32):
        """Requests/s the endpoint alone serves: wrk, 32 connections, DELETE of a pod."""
        script = write_file(self.dir, "delete.lua", 'wrk.method = "DELETE"\n')
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script,
                              f"{self.url}/api/v1/namespaces/bench/pods/bench-0"],
                             capture_output=True, text=True, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
