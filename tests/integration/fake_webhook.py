"""fake_webhook.py: an HTTP receiver for the webhook and teams playbooks: keeps every request (path,
headers, raw body) and answers scripted statuses per path (harness.Receiver), 202 Accepted by default as a
Teams Workflows webhook does, with Retry-After when told."""

import json
from http.server import BaseHTTPRequestHandler

from harness import Receiver


class FakeWebhook(Receiver):
    def __init__(self, default_status=202):
        self.requests = []  # dicts: path, headers (name -> value), header_list (as sent), body (bytes)
        self.retry_after = None  # seconds, sent with 429 and 5xx answers when set
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook.lock:
                    status = hook.next_status(self.path)
                    hook.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                          "header_list": list(self.headers.items()), "body": body})
                self.send_response(status)
                if hook.retry_after is not None and (status == 429 or status >= 500):
                    self.send_header("Retry-After", str(hook.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(Handler, default_status)

    def received(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def bodies(self, path):
        return [json.loads(r["body"]) for r in self.received(path)]
