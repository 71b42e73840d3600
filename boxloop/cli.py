"""The ``boxloop`` command: a thin adapter from arguments to boxloop calls."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import BoxloopError, ConfigError

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


def _parse_set(values: list[str]) -> dict[str, Any]:
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


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from boxloop.local.demo import write_demo_data

    labels, inputs, reference = write_demo_data(
        Path(args.out),
        n_images=args.images,
        n_classes=args.classes,
        seed=args.seed,
        difficulty=args.difficulty,
    )
    print(f"{args.images} images of {', '.join(labels.class_names)} in {args.out}/images")
    print(f"input manifest:     {inputs}\nreference manifest: {reference}")
    return EXIT_OK


def _detector_settings(args: argparse.Namespace, default_steps: int) -> Any:
    from boxloop.local.runners import DetectorSettings

    return DetectorSettings(image_steps=args.image_steps or default_steps, seed=args.seed)


def _workforce(args: argparse.Namespace, labels: Any) -> Any:
    from boxloop.local.workforce import ImportWorkforce, SimulatedWorkforce

    if args.workforce == "simulated":
        if not args.reference:
            raise ConfigError(["--workforce simulated needs --reference REF.manifest"])
        return SimulatedWorkforce.from_groundtruth(args.reference, seed=args.seed)
    if not args.import_labels:
        raise ConfigError(["--workforce import needs --import-labels FILE_OR_DIR"])
    names = labels.class_names
    source = args.import_labels
    readers = {
        "coco": lambda: ImportWorkforce.from_coco(source, class_names=names),
        "voc": lambda: ImportWorkforce.from_voc(Path(source), class_names=names),
        "groundtruth": lambda: ImportWorkforce.from_groundtruth(source, class_names=names),
        "yolo": lambda: ImportWorkforce.from_yolo(Path(source), class_names=names),
    }
    return readers[args.import_format]()


def _cmd_local_run(args: argparse.Namespace) -> int:
    from boxloop.aws.s3 import read_text
    from boxloop.core.labels import LabelConfig
    from boxloop.local.app import (
        LocalRunRequest,
        manifest_from_images,
        read_manifest_lines,
        run_local,
    )
    from boxloop.local.progress import ProgressPrinter, print_headline

    labels = LabelConfig.from_json(read_text(args.labels), source=args.labels)
    if args.images:
        lines, base = manifest_from_images(Path(args.images)), Path(args.images)
    else:
        lines, base = read_manifest_lines(Path(args.manifest)), Path(args.manifest).parent
    request = LocalRunRequest(
        manifest_lines=lines,
        base_dir=base,
        labels=labels,
        workforce=_workforce(args, labels),
        out_dir=Path(args.out),
        overrides=_parse_set(args.set),
        detector=_detector_settings(args, 2400),
        reference=Path(args.reference) if args.reference else None,
        resume_ledger=Path(args.resume) if args.resume else None,
        keep_run_files=args.keep_run_files,
    )
    print_headline(run_local(request, ProgressPrinter()))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from boxloop.local.demo import DEMO_OVERRIDES, DemoSettings, run_demo
    from boxloop.local.progress import ProgressPrinter, print_headline

    settings = DemoSettings(
        n_images=args.images,
        n_classes=args.classes,
        seed=args.seed,
        difficulty=args.difficulty,
        detector=_detector_settings(args, DemoSettings().detector.image_steps),
        overrides={**DEMO_OVERRIDES, **_parse_set(args.set)},
        keep_run_files=args.keep_run_files,
    )
    print(
        f"boxloop demo: {settings.n_images} generated images, simulated workforce, "
        f"outputs in {args.out}"
    )
    print_headline(run_demo(Path(args.out), settings, ProgressPrinter()))
    return EXIT_OK


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from boxloop.local.defaults import DEMO_IMAGES

    parser.add_argument(
        "--images", type=int, default=DEMO_IMAGES, help="number of images (default: %(default)s)"
    )
    parser.add_argument("--classes", type=int, default=3, help="number of object classes (1-8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--difficulty", type=float, default=0.3, help="0 (easy) .. 1 (hard)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a loop setting (see boxloop.core.config.LoopConfig), repeatable",
    )
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="boxloop", description="Active-learning bounding-box labeling, on AWS or offline."
    )
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

    demo_data = sub.add_parser("demo-data", help="generate a labeled demo detection dataset")
    demo_data.add_argument("out", help="output folder")
    _add_data_options(demo_data)
    demo_data.set_defaults(func=_cmd_demo_data)

    demo = sub.add_parser("demo", help="generate demo data and run the whole loop offline")
    demo.add_argument("--out", default="boxloop-demo", help="output folder (default: %(default)s)")
    _add_data_options(demo)
    _add_run_options(demo)
    demo.set_defaults(func=_cmd_demo)

    local = sub.add_parser("local", help="run the loop offline on your own images")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    run = local_sub.add_parser("run", help="run the state machine on the embedded emulator")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of images (searched recursively)")
    source.add_argument("--manifest", help='input manifest ({"source-ref": path} per line)')
    run.add_argument(
        "--labels",
        required=True,
        help="class names: label category config, class-map JSON or JSON list",
    )
    run.add_argument("--workforce", choices=["simulated", "import"], default="simulated")
    run.add_argument(
        "--reference",
        help="reference labels (Ground Truth manifest): the "
        "simulated workforce labels from it, and accuracy is measured against it",
    )
    run.add_argument("--import-labels", help="labels made elsewhere, for --workforce import")
    run.add_argument(
        "--import-format", choices=["coco", "voc", "groundtruth", "yolo"], default="coco"
    )
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--resume", help="ledger.jsonl saved by a failed local run")
    run.add_argument("--seed", type=int, default=0)
    _add_run_options(run)
    run.set_defaults(func=_cmd_local_run)
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
