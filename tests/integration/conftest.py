"""conftest.py: pytest fixtures for the integration tests: a real nats-server, a fake Slack, and the
in-cluster environment of a pod for the fake API server (each test module defines its own `kube`)."""

import pytest

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
def incluster(kube, tmp_path, monkeypatch):
    """The in-cluster environment a pod sees: service host/port and the service account files."""
    sa = tmp_path / "sa"
    sa.mkdir()
    kube.write_service_account(str(sa))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(kube.port))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return str(sa)
