"""Wait states and Retry back-off in moto's engine that take no time, but are recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
    WaitFunction,
)

if TYPE_CHECKING:
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    from boxloop.local.emulator._ledger import PatchLedger


@dataclass(frozen=True, slots=True)
class SkippedDelay:
    """A delay the engine asked for and did not sleep: a Wait state or a Retry interval."""

    kind: Literal["wait", "retry"]
    seconds: float


_SKIPPED: list[SkippedDelay] = []


def skipped_delays() -> tuple[SkippedDelay, ...]:
    """Every delay skipped since the last reset, in the order the engine asked for them."""
    return tuple(_SKIPPED)


def clear() -> None:
    """Forget the skipped delays."""
    _SKIPPED.clear()


def _instant_wait(self: WaitFunction, env: Environment, wait_seconds: int) -> None:
    """Replacement for ``WaitFunction._wait_interval`` (which blocks on an event for real)."""
    _SKIPPED.append(SkippedDelay("wait", float(wait_seconds)))


class _InstantTime:
    """Stands in for the ``time`` module inside ``retrier_decl``: ``sleep`` returns at once."""

    @staticmethod
    def sleep(seconds: float) -> None:
        _SKIPPED.append(SkippedDelay("retry", float(seconds)))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install(ledger: PatchLedger) -> None:
    """Skip Wait states and Retry intervals."""
    ledger.set(WaitFunction, "_wait_interval", _instant_wait)
    ledger.set(retrier_decl, "time", _InstantTime())


def uninstall(ledger: PatchLedger) -> None:
    """Real Wait states and Retry intervals again."""
    ledger.restore(WaitFunction, "_wait_interval")
    ledger.restore(retrier_decl, "time")
