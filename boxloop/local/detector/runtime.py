"""CPU thread control shared by training and inference."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from boxloop.cpu import available_cpus

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[int]:
    """Run the body with ``num_threads`` torch intra-op threads (default: every CPU), then restore.

    Results depend on the thread count only through float summation order, so a fixed count
    plus a fixed seed gives repeatable training.

    Yields:
        The thread count in force.
    """
    wanted = num_threads if num_threads is not None else available_cpus()
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, wanted))
    try:
        yield max(1, wanted)
    finally:
        torch.set_num_threads(previous)
