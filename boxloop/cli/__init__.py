"""The ``boxloop`` command: a thin adapter from arguments to boxloop calls.

Each sub-command lives in its own module with a ``register(sub)`` that adds its parser;
``build_parser`` calls them in the order ``--help`` lists them.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from boxloop.cli import aws, demo, export, local, review, settings, validate
from boxloop.cli.common import EXIT_ERROR
from boxloop.core.errors import BoxloopError

if TYPE_CHECKING:
    from collections.abc import Sequence

_COMMANDS = (validate, demo, local, review, export, aws, settings)
"""The sub-command modules, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="boxloop", description="Active-learning bounding-box labeling, on AWS or offline."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; bad input prints its message (no traceback) and exits 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (BoxloopError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
