"""``boxloop validate``: check a Ground Truth bounding-box manifest line by line."""

from __future__ import annotations

import argparse

from boxloop.cli.common import EXIT_BAD_INPUT, EXIT_OK


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


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``validate`` to the command's sub-parsers."""
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
