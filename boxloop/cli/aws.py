"""``boxloop aws ...``: operate a deployed stack from the terminal.

The group's sub-commands live in their own modules (each with ``register(aws_sub)``), listed in
``_AWS_COMMANDS``.
"""

from __future__ import annotations

import argparse

from boxloop.cli import aws_run, aws_workers

_AWS_COMMANDS: tuple = (aws_run, aws_workers)
"""The ``boxloop aws`` sub-command modules, in ``--help`` order."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``aws`` group and its sub-commands to the command's sub-parsers."""
    aws = sub.add_parser("aws", help="operate a deployed boxloop stack (AWS credentials needed)")
    aws_sub = aws.add_subparsers(dest="aws_command", required=True)
    for module in _AWS_COMMANDS:
        module.register(aws_sub)
