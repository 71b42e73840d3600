"""The ``boxloop`` command: a thin adapter from arguments to boxloop calls."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from boxloop.core.errors import BoxloopError

if TYPE_CHECKING:
    from collections.abc import Sequence

EXIT_OK, EXIT_BAD_INPUT, EXIT_ERROR = 0, 1, 2


def _cmd_validate(args: argparse.Namespace) -> int:
    from boxloop.aws.s3 import iter_lines, read_text
    from boxloop.core.labels import LabelConfig
    from boxloop.core.manifests import ValidationReport, validate_manifest

    label_config = None
    if args.class_map:
        label_config = LabelConfig.from_json(read_text(args.class_map), source=args.class_map)
    report = ValidationReport(source=args.manifest)
    for _ in validate_manifest(
        iter_lines(args.manifest),
        source=args.manifest,
        attr=args.label_attribute,
        label_config=label_config,
        report=report,
    ):
        pass
    for error in report.errors:
        print(f"line {error.line}: {error.detail}")
    print(report.summary())
    return EXIT_BAD_INPUT if report.bad else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="boxloop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser(
        "validate",
        help="check a Ground Truth bounding-box manifest line by line",
        description="Print every bad line as 'line N: reason' and a summary; exit 1 when any "
        "line is bad.",
    )
    validate.add_argument("manifest", help="local path or s3:// URI of a JSON Lines manifest")
    validate.add_argument(
        "--class-map",
        help="label category config, class-map JSON or JSON "
        "list of class names; every label must agree with it",
    )
    validate.add_argument(
        "--label-attribute",
        help="label attribute to check (default: detected from '<name>-metadata' keys)",
    )
    validate.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; bad input prints its message (no traceback) and exits 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BoxloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
