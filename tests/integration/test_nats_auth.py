"""test_nats_auth.py: the NATS authorization shipped in manifests/nats.yaml, on a real nats-server running
that very file (read from the manifest, test passwords put in its environment, so that the test breaks
if the manifest drifts). An anonymous client is refused; the publisher identity `falco` can neither read
alerts nor join playbookd's queue group; playbookd's identity cannot forge an alert; a forged alert
reaches no playbook (the fake API server counts the requests); falco-nats with the publisher identity,
by password or by NKey (--nkey), reaches the playbook in core and JetStream mode; playbookd with
nats.nkey works; a bad seed file is refused at start-up and by --check without showing its content;
playbookd warns at start-up when it has no credentials and acts for real.

The NKeys are made here, independently of the C code: the Ed25519 key pair by python3-cryptography, the
encoding by the standard library (base32, binascii.crc_hqx: CRC-16/XMODEM), as nats-io/nkeys defines
them. nats-server itself then checks playbookd's and falco-nats's public key and nonce signature."""

import base64
import binascii
import os
import re
import socket
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fake_kube import FakeKube
from harness import (FALCO_NATS, PLAYBOOKD, FalcoNats, NatsClient, Playbookd, authorized_nats, manifest_nats_auth,
                     run_playbookd, wait_until)

SUBJECT = "falco.notice.terminal_shell_in_container"
UID = "6f1c1e8a-0000-4000-8000-000000000001"
PASSWORDS = {"falco": "pwfalco0123456789abcdef", "playbookd": "pwplaybookd0123456789abcdef"}
PREFIX_SEED, PREFIX_USER, PREFIX_ACCOUNT = 18 << 3, 20 << 3, 0


# --- the manifest's authorization, and test identities --------------------------------------------------


def nkey_encode(raw):
    return base64.b32encode(raw + binascii.crc_hqx(raw, 0).to_bytes(2, "little")).decode().rstrip("=")


def nkey_pair(kind=PREFIX_USER):
    """(seed "SU…", public key "U…") of a fresh Ed25519 key."""
    seed = os.urandom(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return (nkey_encode(bytes([PREFIX_SEED | (kind >> 5), (kind & 31) << 3]) + seed),
            nkey_encode(bytes([kind]) + public))


def with_nkeys(conf, publics):
    """The manifest's authorization with each user's user/password replaced by its NKey (same permissions)."""
    for user, public in publics.items():
        conf, n = re.subn(rf"user:\s*{user}\s*\n\s*password:\s*\$\w+", f"nkey: {public}", conf)
        assert n == 1, f"user {user} not found in the manifest's auth.conf"
    return conf


class Identities:
    """How the two identities log in: user/password (as shipped) or NKey seed files."""

    def __init__(self, mode, tmp_path):
        self.mode = mode
        self.seeds = {}
        if mode == "nkey":
            for user in PASSWORDS:
                seed, public = nkey_pair()
                path = tmp_path / f"{user}.seed"
                path.write_text(seed + "\n")
                path.chmod(0o600)
                self.seeds[user] = (str(path), public)

    def server(self):
        conf, variables = manifest_nats_auth()
        assert set(variables) == set(PASSWORDS), "two identities with passwords from the environment"
        if self.mode == "nkey":
            conf = with_nkeys(conf, {u: public for u, (_, public) in self.seeds.items()})
        return authorized_nats(PASSWORDS, conf, jetstream=True)

    def playbookd_nats(self):
        if self.mode == "nkey":
            return f"nkey: {self.seeds['playbookd'][0]}"
        return f"user: playbookd\n  password: {PASSWORDS['playbookd']}"

    def falco_nats_args(self):
        return ["--nkey", self.seeds["falco"][0]] if self.mode == "nkey" else ["--user", "falco", "--password",
                                                                                PASSWORDS["falco"]]


@pytest.fixture
def authed():
    """nats-server with the manifest's authorization and the test passwords."""
    server = Identities("password", None).server()
    yield server
    server.stop()


@pytest.fixture
def kube(tmp_path):
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    fake.add_pod("default", "web-0", node="node-1", uid=UID)
    fake.add_pod("shop", "cart-7d9f", node="node-1")
    yield fake
    fake.stop()


def alert(pod="web-0", ns="default"):
    import json
    return json.dumps({"rule": "Terminal shell in container", "priority": "Notice",
                       "time": "2026-11-23T03:00:00.000000000Z", "hostname": "node-1", "source": "syscall",
                       "output": f"A shell was spawned in {ns}/{pod}",
                       "output_fields": {"container.id": "ee97d9c4186f", "k8s.ns.name": ns, "k8s.pod.name": pod,
                                         "proc.cmdline": "sh -i"}})


def config(nats, auth, sa, jetstream=False, dry_run=False):
    js = """
  jetstream:
    stream: FALCO
    create_stream: {subjects: ["falco.>"], storage: memory}""" if jetstream else ""
    return f"""
nats:
  servers: [{nats.url}]
  queue_group: playbookd
  {auth}{js}
kubernetes: {{service_account_dir: {sa}}}
dry_run: {str(dry_run).lower()}
playbooks:
  kill: {{type: delete-pod, grace_period_seconds: 0}}
topics:
  {SUBJECT}: [kill]
"""


def refused(action):
    """The -ERR nats-server answered to action (a client call), or None if it was accepted."""
    try:
        action()
    except (RuntimeError, ConnectionError, OSError) as e:
        return str(e) or type(e).__name__
    return None


def deletes(kube):
    return [r for r in kube.requests() if r.method == "DELETE"]


# --- who may do what -----------------------------------------------------------------------------------


def anonymous_session(port, *commands):
    """Everything nats-server says to a client without credentials that sends commands, until it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(c + b"\r\n" for c in (b'CONNECT {"verbose":false}', *commands, b"PING")))
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


def test_an_anonymous_client_is_refused(authed):
    said = anonymous_session(authed.port, b"SUB falco.> playbookd 1")
    assert b"-ERR 'Authorization Violation'" in said and b"PONG" not in said, said
    # The same call with playbookd's identity works: the refusal is the authorization's doing.
    reader = NatsClient(authed.port, user="playbookd", password=PASSWORDS["playbookd"])
    assert refused(lambda: reader.subscribe("falco.>", queue="playbookd")) is None
    reader.close()


def test_a_wrong_password_is_refused(authed):
    client = NatsClient(authed.port, user="playbookd", password=PASSWORDS["falco"])
    assert "Authorization Violation" in (refused(client.flush) or "")
    client.close()


@pytest.mark.parametrize("subject,queue", [("falco.>", None), ("falco.>", "playbookd"),
                                           (SUBJECT, "playbookd"), ("falco.*.*", None), (">", None),
                                           ("_INBOX_playbookd.>", None), ("_INBOX.>", None)])
def test_the_publisher_cannot_read_alerts_nor_join_the_queue_group(authed, subject, queue):
    falco = NatsClient(authed.port, user="falco", password=PASSWORDS["falco"])
    why = refused(lambda: falco.subscribe(subject, queue=queue))
    assert why and "Permissions Violation for Subscription" in why, why
    falco.close()


@pytest.mark.parametrize("user,subject", [
    ("playbookd", SUBJECT),                            # playbookd cannot forge an alert
    ("falco", "$JS.API.STREAM.DELETE.FALCO"),          # the publisher cannot touch the stream
    ("falco", "$JS.API.CONSUMER.DELETE.FALCO.playbookd"),
    ("falco", "$JS.ACK.FALCO.playbookd.1.1.1.1.0"),     # nor acknowledge alerts away
])
def test_each_identity_publishes_only_what_it_must(authed, user, subject):
    client = NatsClient(authed.port, user=user, password=PASSWORDS[user])
    why = refused(lambda: client.publish(subject, b"{}"))
    assert why and "Permissions Violation for Publish" in why, why
    client.close()


def test_a_forged_alert_reaches_no_playbook(authed, kube, incluster):
    pbd = Playbookd(config(authed, f"user: playbookd\n  password: {PASSWORDS['playbookd']}", incluster))
    try:
        pbd.wait_ready()
        forged = alert("cart-7d9f", "shop").encode()
        said = anonymous_session(authed.port, b"PUB %s %d\r\n%s" % (SUBJECT.encode(), len(forged), forged))
        assert b"Authorization Violation" in said and b"PONG" not in said
        insider = NatsClient(authed.port, user="playbookd", password=PASSWORDS["playbookd"])
        assert "Permissions Violation for Publish" in (refused(lambda: insider.publish(SUBJECT, forged)) or "")
        insider.close()
        # Then the real publisher, about another pod: it is acted on, so playbookd was listening, and
        # alerts about one pod run in arrival order, so a forged one would have been seen by now.
        falco = NatsClient(authed.port, user="falco", password=PASSWORDS["falco"])
        falco.publish(SUBJECT, alert())
        falco.close()
        wait_until(lambda: pbd.logged("action"), what="the real alert's action")
        assert [r.path for r in deletes(kube)] == ["/api/v1/namespaces/default/pods/web-0"]
        assert kube.pod("shop", "cart-7d9f") is not None, "the forged alert's pod is untouched"
        assert not [r for r in kube.requests() if "cart-7d9f" in r.path]
        assert len(pbd.logged("action")) == 1
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()



def test_playbookd_refused_by_the_server_exits_to_be_restarted(authed, kube, incluster):
    """A refused login closes the connection for good: playbookd says so and exits 1 (Kubernetes restarts it)
    rather than running on, never ready."""
    pbd = Playbookd(config(authed, f"user: playbookd\n  password: {PASSWORDS['falco']}", incluster))
    try:
        assert pbd.proc.wait(timeout=30) == 1
        assert pbd.logged("nats connection closed")[0]["level"] == "error"
        # Refused at once (the first connect answers) or once connected in the background: both end here.
        assert pbd.logged("stopping: the NATS connection is closed for good") or pbd.logged("cannot start")
        assert PASSWORDS["falco"] not in open(pbd.log_path).read()
        assert not pbd.logged("ready")
    finally:
        pbd.cleanup()


# --- the real publishers and playbookd, by password and by NKey ---------------------------------------


@pytest.mark.parametrize("mode", ["core", "jetstream"])
@pytest.mark.parametrize("login", ["password", "nkey"])
def test_falco_nats_with_the_publisher_identity_reaches_the_playbook(tmp_path, kube, incluster, login, mode):
    ids = Identities(login, tmp_path)
    server = ids.server()
    pbd = falco_nats = None
    try:
        pbd = Playbookd(config(server, ids.playbookd_nats(), incluster, jetstream=mode == "jetstream"))
        pbd.wait_ready()
        falco_nats = FalcoNats(server.url, "-", *ids.falco_nats_args(),
                               *(["--jetstream"] if mode == "jetstream" else []), stdin=subprocess.PIPE)
        falco_nats.proc.stdin.write(alert().encode() + b"\n")
        falco_nats.proc.stdin.close()
        assert falco_nats.proc.wait(timeout=30) == 0
        assert falco_nats.logged("stopped", published="1", not_delivered="0"), falco_nats.lines()
        wait_until(lambda: pbd.logged("action"), what="the playbook's action")
        assert pbd.logged("action")[0]["outcome"] == "ok"
        assert [r.path for r in deletes(kube)] == ["/api/v1/namespaces/default/pods/web-0"]
        assert not pbd.logged("nats: connecting without credentials: anyone who can reach NATS can trigger the "
                              "playbooks")
    finally:
        if pbd:
            assert pbd.stop() == 0
            pbd.cleanup()
        if falco_nats:
            falco_nats.kill()
        server.stop()


def test_an_nkey_the_server_does_not_know_is_refused(tmp_path):
    ids = Identities("nkey", tmp_path)
    server = ids.server()
    try:
        stranger, _ = nkey_pair()
        path = tmp_path / "stranger.seed"
        path.write_text(stranger)
        p = subprocess.run([FALCO_NATS, "-s", server.url, "-f", "-", "--nkey", str(path), "--log-format", "json"],
                           input=alert().encode() + b"\n", capture_output=True, timeout=60)
        assert b'"published":"0"' in p.stderr and b'"not_delivered":"1"' in p.stderr, p.stderr
        assert b'"msg":"nats connection closed","error"' in p.stderr, "the refusal is logged as an error"
        assert stranger.encode() not in p.stdout + p.stderr
        # The known key, the same way: published.
        p = subprocess.run([FALCO_NATS, "-s", server.url, "-f", "-", *ids.falco_nats_args()],
                           input=alert().encode() + b"\n", capture_output=True, timeout=60)
        assert b"published=1" in p.stderr, p.stderr
    finally:
        server.stop()


# --- the seed file ------------------------------------------------------------------------------------


def flip(seed):
    """The seed with one base32 character changed (the checksum no longer matches)."""
    i = len(seed) // 2
    return seed[:i] + ("A" if seed[i] != "A" else "B") + seed[i + 1:]


BAD_SEEDS = {
    "empty": ("", "no NKey seed"),
    "changed character": (lambda s: flip(s), "checksum"),
    "cut short": (lambda s: s[:-3], "not an NKey seed"),
    "not base32": (lambda s: s[:10] + "1" + s[11:], "not an NKey seed"),
    "a public key": (lambda s: nkey_pair()[1], "not an NKey seed"),
    "an account seed": (lambda s: nkey_pair(PREFIX_ACCOUNT)[0], "not a user NKey seed"),
    "two lines": (lambda s: s + "\n" + s, "expected one NKey seed"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEEDS))
def test_a_bad_seed_file_is_refused_by_check_and_at_start_without_showing_it(tmp_path, case):
    seed, _ = nkey_pair()
    make, reason = BAD_SEEDS[case]
    content = make(seed) if callable(make) else make
    path = tmp_path / "seed"
    path.write_text(content)
    text = f"nats: {{servers: [nats://127.0.0.1:1], nkey: {path}}}\nplaybooks: {{}}\ntopics: {{falco.>: [delete-pod]}}\n"
    rc, out, err = run_playbookd(text, "--check")
    assert rc == 1 and reason in err and str(path) in err, err
    for secret in {seed, content.strip()} - {""}:
        assert secret not in out + err
    p = subprocess.run([FALCO_NATS, "-s", "nats://127.0.0.1:1", "-f", "-", "--nkey", str(path)],
                       input=b"", capture_output=True, timeout=30)
    assert p.returncode == 1 and reason.encode() in p.stderr, p.stderr
    for secret in {seed, content.strip()} - {""}:
        assert secret.encode() not in p.stdout + p.stderr


def test_an_unreadable_seed_file_is_refused(tmp_path):
    for path in (tmp_path / "missing", tmp_path):  # absent; a directory
        text = f"nats: {{nkey: {path}}}\ntopics: {{falco.>: [delete-pod]}}\n"
        rc, _, err = run_playbookd(text, "--check")
        assert rc == 1 and f"nkey {path}: cannot" in err, err


def test_a_seed_file_with_decoration_and_windows_line_ends_is_read(tmp_path):
    seed, public = nkey_pair()
    path = tmp_path / "seed"
    path.write_text(f"-----BEGIN USER NKEY SEED-----\r\n  {seed} \t\r\n------END USER NKEY SEED------\r\n\r\n")
    text = f"nats: {{nkey: {path}}}\ntopics: {{falco.>: [delete-pod]}}\n"
    rc, out, err = run_playbookd(text, "--check")
    assert rc == 0, err


@pytest.mark.parametrize("other", ["token: t", "user: u, password: p", "credentials: /x.creds"])
def test_nkey_goes_alone(tmp_path, other):
    seed, _ = nkey_pair()
    path = tmp_path / "seed"
    path.write_text(seed)
    rc, _, err = run_playbookd(f"nats: {{nkey: {path}, {other}}}\ntopics: {{falco.>: [delete-pod]}}\n", "--check")
    assert rc == 1 and "choose one of token, user/password, credentials or nkey" in err, err
    flag = {"token": ["--token", "t"], "user": ["--user", "u", "--password", "p"],
            "credentials": ["--creds", "/x.creds"]}[other.split(":")[0]]
    p = subprocess.run([FALCO_NATS, "-f", "-", "--nkey", str(path), *flag], capture_output=True, timeout=30)
    assert p.returncode == 2 and b"choose one of token" in p.stderr, p.stderr


# --- the start-up warning -------------------------------------------------------------------------------

WARNING = "nats: connecting without credentials: anyone who can reach NATS can trigger the playbooks"


@pytest.mark.parametrize("auth,dry_run,warned", [
    ("", False, True),                 # no credentials, acting for real: warned
    ("", True, False),                 # a rehearsal changes nothing
    ("token: t0k3n", False, False),
    ("user: u\n  password: p", False, False),
])
def test_start_up_warning_without_credentials(nats, incluster, auth, dry_run, warned):
    pbd = Playbookd(config(nats, auth, incluster, dry_run=dry_run))
    try:
        pbd.wait_logged("starting")
        wait_until(lambda: pbd.logged("subscribed") or pbd.logged("nats not reachable yet, retrying in the "
                                                                  "background") or pbd.proc.poll() is not None,
                   what="playbookd to connect or try")
        assert bool(pbd.logged(WARNING)) == warned
        if warned:
            assert pbd.logged(WARNING)[0]["level"] == "warn"
    finally:
        pbd.stop()
        pbd.cleanup()


def test_start_up_warning_with_an_nkey(tmp_path, incluster):
    ids = Identities("nkey", tmp_path)
    server = ids.server()
    pbd = Playbookd(config(server, ids.playbookd_nats(), incluster))
    try:
        pbd.wait_ready()
        assert not pbd.logged(WARNING)
    finally:
        assert pbd.stop() == 0
        pbd.cleanup()
        server.stop()


def test_the_binaries_under_test_exist():
    assert os.path.exists(PLAYBOOKD) and os.path.exists(FALCO_NATS)
