"""``boxloop export OUT --format coco|voc|yolo|groundtruth --out PATH``: a local run's labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from boxloop.aws.operate.export import FORMATS
from boxloop.cli.common import EXIT_OK
from boxloop.steps.finalize import OUTPUT_MANIFEST


def _cmd_export(args: argparse.Namespace) -> int:
    from boxloop.aws.operate.export import export_manifest, manifest_classes, summary_text
    from boxloop.aws.s3 import read_text
    from boxloop.core.errors import BoxloopError
    from boxloop.core.labels import LabelConfig

    run_out = Path(args.run_out)
    manifest = run_out / OUTPUT_MANIFEST if run_out.is_dir() else run_out
    if not manifest.is_file():
        raise BoxloopError(
            f"{manifest}: no such file (give a local run's output folder or its output.manifest)"
        )
    attr, classes = manifest_classes(str(manifest))
    names = classes
    if args.labels:
        names = dict(
            enumerate(LabelConfig.from_json(read_text(args.labels), source=args.labels).class_names)
        )
    out = Path(args.out)
    summary = export_manifest(
        str(manifest), args.format, out, label_attribute=attr, class_names=names
    )
    print(summary_text(args.format, out, summary))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    export = sub.add_parser(
        "export", help="a local run's labels as COCO, Pascal VOC, YOLO or a Ground Truth manifest"
    )
    export.add_argument("run_out", metavar="OUT", help="a local run's output folder")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", required=True, help="file (coco, groundtruth) or folder")
    export.add_argument(
        "--labels",
        help="the run's class names (as for boxloop local run); default: the manifest's class maps",
    )
    export.set_defaults(func=_cmd_export)
