"""``boxloop settings``: every setting with its context key, type, default and when to change it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from boxloop.cli.common import EXIT_OK


def _cmd_settings(args: argparse.Namespace) -> int:
    from boxloop.core.settings import all_settings, markdown_table, with_context, with_table

    settings = all_settings()
    table = markdown_table(settings)
    if args.write_readme:
        path = Path(args.write_readme)
        path.write_text(with_table(path.read_text(encoding="utf-8"), table), encoding="utf-8")
        print(f"{path}: settings table rewritten")
    if args.write_cdk_json:
        path = Path(args.write_cdk_json)
        content = with_context(json.loads(path.read_text(encoding="utf-8")))
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path}: context defaults rewritten")
    if args.write_readme or args.write_cdk_json:
        return EXIT_OK
    if args.json:
        print(json.dumps([s.to_json() for s in settings], indent=2, ensure_ascii=False))
    else:
        print(table, end="")
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
    parser.add_argument(
        "--write-readme",
        metavar="README.md",
        help="after adding or changing a setting: rewrite the table between the markers",
    )
    parser.add_argument(
        "--write-cdk-json",
        metavar="cdk.json",
        help="after adding or changing a setting: rewrite the context defaults (CDK flags kept)",
    )
    parser.set_defaults(func=_cmd_settings)
