"""conftest.py: pytest fixtures for the integration tests: a real nats-server and a fake Slack."""

import pytest

from harness import FakeSlack, NatsServer


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
