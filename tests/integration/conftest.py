"""conftest.py: pytest fixtures for the integration tests: a real nats-server and a fake Slack."""

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
