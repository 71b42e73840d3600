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


def _pin_xdist_worker_to_one_cpu() -> None:
    """Give each pytest-xdist worker its own CPU.

    Two workers each running two torch threads on two cores thrash; pinned, each worker's torch
    sees one CPU (``available_cpus``) and uses one thread.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})


_pin_xdist_worker_to_one_cpu()


@pytest.fixture(autouse=True)
def _fresh_boto3_clients() -> Iterator[None]:
    """Each test gets new boto3 clients, so none escapes the test's moto mock."""
    clients.clear()
    yield
    clients.clear()
