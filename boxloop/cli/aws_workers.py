"""``boxloop aws workers add EMAIL | list | remove EMAIL``: the labelers of a deployed stack.

Thin adapters over ``boxloop.aws.workers``; the stack (``--stack``, default ``Boxloop``) is
found by name, its pool and app URL from its outputs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from boxloop.aws.stack_outputs import DEFAULT_STACK_NAME
from boxloop.cli.common import EXIT_OK

if TYPE_CHECKING:
    from boxloop.aws.workers import Workforce


def _workforce(args: argparse.Namespace) -> Workforce:
    from boxloop.aws.stack_outputs import load_stack_outputs
    from boxloop.aws.workers import Workforce

    return Workforce.of(load_stack_outputs(args.stack))


def _cmd_add(args: argparse.Namespace) -> int:
    workforce = _workforce(args)
    for email in args.emails:
        if workforce.add(email):
            print(
                f"invited {email}: Cognito emails a temporary password; they sign in at "
                f"{workforce.url}"
            )
        else:
            print(f"{email} already has an account; they are in the labelers group")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    workforce = _workforce(args)
    labelers = list(workforce.labelers())
    for labeler in labelers:
        print(labeler.line())
    print(f"{len(labelers)} labeler(s); the app: {workforce.url}")
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    workforce = _workforce(args)
    for email in args.emails:
        workforce.remove(email)
        print(f"removed {email} (their answers stay in the runs' labels)")
    return EXIT_OK


def register(aws_sub: argparse._SubParsersAction) -> None:
    """Add ``workers`` and its ``add``, ``list`` and ``remove`` commands."""
    workers = aws_sub.add_parser(
        "workers", help="the people who label in the stack's labeling app (Cognito users)"
    )
    workers_sub = workers.add_subparsers(dest="workers_command", required=True)
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument(
        "--stack", default=DEFAULT_STACK_NAME, help="the deployed stack's name (default Boxloop)"
    )
    add = workers_sub.add_parser(
        "add", parents=[stack], help="invite labelers by email (they get a temporary password)"
    )
    add.add_argument("emails", nargs="+", metavar="EMAIL")
    add.set_defaults(func=_cmd_add)
    listing = workers_sub.add_parser("list", parents=[stack], help="list the labelers")
    listing.set_defaults(func=_cmd_list)
    remove = workers_sub.add_parser(
        "remove", parents=[stack], help="delete labelers' accounts (their answers stay)"
    )
    remove.add_argument("emails", nargs="+", metavar="EMAIL")
    remove.set_defaults(func=_cmd_remove)
