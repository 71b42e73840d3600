"""Suite-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from boxloop.aws import clients

# No per-example deadline: a loaded 2-core CI machine makes timings meaningless (speed lives
# in bench/). In CI, a fixed example sequence, so a landing never depends on luck; locally,
# hypothesis keeps exploring new examples.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _fresh_boto3_clients() -> Iterator[None]:
    """Each test gets new boto3 clients, so none escapes the test's moto mock."""
    clients.clear()
    yield
    clients.clear()
