"""``boxloop demo`` and ``boxloop demo-data``: the loop on generated images, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from boxloop.cli.common import (
    EXIT_OK,
    add_run_options,
    detector_settings,
    parse_set,
    stop_signals_interrupt,
)


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from boxloop.local.demo import write_demo_data

    labels, inputs, reference = write_demo_data(
        Path(args.out),
        n_images=args.images,
        n_classes=args.classes,
        seed=args.seed,
        difficulty=args.difficulty,
        density=args.density,
    )
    print(f"{args.images} images of {', '.join(labels.class_names)} in {args.out}/images")
    print(f"input manifest:     {inputs}\nreference manifest: {reference}")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from boxloop.local.demo import DemoSettings, run_demo
    from boxloop.local.progress import ProgressPrinter, print_headline

    settings = DemoSettings(
        n_images=args.images,
        n_classes=args.classes,
        seed=args.seed,
        difficulty=args.difficulty,
        density=args.density,
        detector=detector_settings(args, DemoSettings().detector.image_steps),
        overrides=parse_set(args.set),
        keep_run_files=args.keep_run_files,
    )
    print(
        f"boxloop demo: {settings.n_images} generated images, simulated workforce, "
        f"outputs in {args.out}"
    )
    with ProgressPrinter() as printer, stop_signals_interrupt():
        result = run_demo(Path(args.out), settings, printer)
    print_headline(result)
    return EXIT_OK


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    from boxloop.local.defaults import DEMO_IMAGES

    parser.add_argument(
        "--images", type=int, default=DEMO_IMAGES, help="number of images (default: %(default)s)"
    )
    parser.add_argument("--classes", type=int, default=3, help="number of object classes (1-8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--difficulty", type=float, default=0.3, help="0 (easy) .. 1 (hard)")
    parser.add_argument(
        "--density",
        type=float,
        default=1.0,
        help="objects per image: 1 = 1-4 targets, 4 = dense scenes of up to 16 small ones",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo-data`` and ``demo`` to the command's sub-parsers."""
    demo_data = sub.add_parser("demo-data", help="generate a labeled demo detection dataset")
    demo_data.add_argument("out", help="output folder")
    _add_data_options(demo_data)
    demo_data.set_defaults(func=_cmd_demo_data)

    demo = sub.add_parser("demo", help="generate demo data and run the whole loop offline")
    demo.add_argument("--out", default="boxloop-demo", help="output folder (default: %(default)s)")
    _add_data_options(demo)
    add_run_options(demo)
    demo.set_defaults(func=_cmd_demo)
