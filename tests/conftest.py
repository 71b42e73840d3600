"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from boxloop.aws import clients


@pytest.fixture(autouse=True)
def _fresh_boto3_clients() -> Iterator[None]:
    """Each test gets new boto3 clients, so none escapes the test's moto mock."""
    clients.clear()
    yield
    clients.clear()
