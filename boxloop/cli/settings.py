"""``boxloop settings``: every setting with its context key, type, default and when to change it."""

from __future__ import annotations

import argparse
import json

from boxloop.cli.common import EXIT_OK


def _cmd_settings(args: argparse.Namespace) -> int:
    from boxloop.core.settings import all_settings, markdown_table

    settings = all_settings()
    if args.json:
        print(json.dumps([s.to_json() for s in settings], indent=2, ensure_ascii=False))
    else:
        print(markdown_table(settings), end="")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``settings`` to the command's sub-parsers."""
    parser = sub.add_parser(
        "settings",
        help="list every setting: --set / overrides name, CDK context key, type, default",
        description="Every setting, declared once in boxloop.core.config (run settings) and "
        "boxloop.core.settings (stack settings); the README's table is this output.",
    )
    parser.add_argument("--json", action="store_true", help="the declarations as JSON")
    parser.set_defaults(func=_cmd_settings)
