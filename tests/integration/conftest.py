"""conftest.py: pytest fixtures for the integration tests: a real nats-server, a fake Slack, and the
fake API server with one node (a module may define its own `kube`) and the in-cluster environment of a
pod pointed at it."""

import pytest

from fake_kube import FakeKube
from harness import RUNNING, FakeSlack, NatsServer


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Whatever a test asserted, no playbookd or falco-nats it started outlives it."""
    yield
    while RUNNING:
        RUNNING.pop().kill()


@pytest.fixture
def nats():
    server = NatsServer()
    yield server
    server.stop()


@pytest.fixture
def slack():
    receiver = FakeSlack()
    yield receiver
    receiver.stop()


@pytest.fixture
def kube(tmp_path):
    """A fake API server with one node, node-1; a test module needing more defines its own."""
    fake = FakeKube(str(tmp_path / "kube"))
    fake.add_node("node-1")
    yield fake
    fake.stop()


@pytest.fixture
def incluster(kube, tmp_path, monkeypatch):
    """The in-cluster environment a pod sees: service host/port and the service account files."""
    sa = tmp_path / "sa"
    sa.mkdir()
    kube.write_service_account(str(sa))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return str(sa)
