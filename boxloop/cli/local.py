"""``boxloop local run``: the state machine on the embedded emulator, over your own images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from boxloop.cli.common import (
    EXIT_OK,
    add_run_options,
    detector_settings,
    parse_set,
    stop_signals_interrupt,
)
from boxloop.core.errors import ConfigError


def _workforce(args: argparse.Namespace, labels: Any, announce: Any) -> Any:
    from boxloop.local.workforce import ImportWorkforce, SimulatedWorkforce

    if args.workforce == "browser":
        from boxloop.local.workforce.browser import BrowserWorkforce

        return BrowserWorkforce(
            Path(args.out) / "labeling",
            host=args.host,
            port=args.port,
            lease_s=args.lease_seconds,
            announce=announce,
        )
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
    printer = ProgressPrinter()
    overrides = parse_set(args.set)
    if args.workforce == "browser" and "workers_per_object" not in overrides:
        # The loop's default has three simulated workers per image; people at their own
        # images are usually one: each image would otherwise wait for two more browsers.
        overrides["workers_per_object"] = 1
    workforce = _workforce(
        args, labels, lambda text: printer.console.print(text, soft_wrap=True, markup=False)
    )
    if args.images:
        lines, base = manifest_from_images(Path(args.images)), Path(args.images)
    else:
        lines, base = read_manifest_lines(Path(args.manifest)), Path(args.manifest).parent
    request = LocalRunRequest(
        manifest_lines=lines,
        base_dir=base,
        labels=labels,
        workforce=workforce,
        out_dir=Path(args.out),
        overrides=overrides,
        detector=detector_settings(args, 2400),
        reference=Path(args.reference) if args.reference else None,
        resume_ledger=Path(args.resume) if args.resume else None,
        keep_run_files=args.keep_run_files,
    )
    try:
        with printer, stop_signals_interrupt():
            result = run_local(request, printer)
    finally:
        close = getattr(workforce, "close", None)  # the browser workforce's server
        if close is not None:
            close()
    print_headline(result)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``local run`` to the command's sub-parsers."""
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
    run.add_argument(
        "--workforce",
        choices=["simulated", "import", "browser"],
        default="simulated",
        help="who labels: simulated annotators (--reference), imported labels "
        "(--import-labels), or people in their browser (the run prints the URL)",
    )
    run.add_argument(
        "--host",
        default="127.0.0.1",
        help="--workforce browser: address to serve on (0.0.0.0 lets other machines in)",
    )
    run.add_argument(
        "--port", type=int, default=0, help="--workforce browser: port (default: a free one)"
    )
    run.add_argument(
        "--lease-seconds",
        type=float,
        default=600.0,
        help="--workforce browser: an image opened and not submitted returns after this long",
    )
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
    add_run_options(run)
    run.set_defaults(func=_cmd_local_run)
