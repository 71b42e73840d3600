"""What every ``boxloop`` sub-command shares: exit codes, ``--set`` parsing, run options."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

EXIT_OK, EXIT_BAD_INPUT, EXIT_ERROR = 0, 1, 2


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the body, whatever the command inherited.

    A command started in the background of a non-interactive shell (``cmd &`` in a script, CI)
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt, so Ctrl-C would
    not end a labeling server or a review; SIGTERM (``kill``, a container stop) would end it
    without the paths that save the ledger and redraw the report. With both raising, the
    commands' own ``except KeyboardInterrupt`` does that work. The previous handlers come back
    after; outside the main thread, where handlers cannot be set, the body runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def parse_set(values: list[str]) -> dict[str, Any]:
    """``key=value`` settings; values are JSON when they parse as JSON, else strings."""
    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {item!r}: expected key=value"])
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def detector_settings(args: argparse.Namespace, default_steps: int) -> Any:
    """The local detector's budget from ``--image-steps`` (else ``default_steps``) and seed."""
    from boxloop.local.runners import DetectorSettings

    return DetectorSettings(image_steps=args.image_steps or default_steps, seed=args.seed)


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...``: several after one ``--set``, or ``--set`` repeated, or both.

    Every command that takes loop settings declares it here, so they all read it alike;
    ``parse_set`` turns the list into overrides.
    """
    parser.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="run settings (`boxloop settings` lists them): --set a=1 b=2, or repeated",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--set``, ``--image-steps`` and ``--keep-run-files``: shared by ``demo`` and ``local run``.

    (One declaration so the two commands never drift.)
    """
    add_set_option(parser)
    parser.add_argument(
        "--image-steps",
        type=int,
        default=None,
        help="local detector training budget per iteration, in images",
    )
    parser.add_argument(
        "--keep-run-files",
        action="store_true",
        help="also copy every file the run wrote (each step's ledger, every iteration's "
        "predictions and report) into OUT/run-files/",
    )
