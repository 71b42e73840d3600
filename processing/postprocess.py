"""SageMaker Processing entry point: post-process batch-transform output (see boxloop.steps).

The job mounts the boxloop source next to this script (``code`` input), so the framework
container needs no ``pip install`` at run time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boxloop.aws.s3 import read_image_size
from boxloop.core.confidence import ConfidenceConfig
from boxloop.core.errors import BoxloopError
from boxloop.cpu import available_cpus
from boxloop.steps.postprocess import postprocess, stats_json

BASE = Path("/opt/ml/processing")


def build_parser() -> argparse.ArgumentParser:
    """Arguments as the state machine passes them (ContainerArguments)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=Path, default=BASE / "input/records/records.jsonl")
    parser.add_argument("--predictions", type=Path, default=BASE / "input/predictions")
    parser.add_argument("--output", type=Path, default=BASE / "output")
    parser.add_argument("--score-floor", type=float, default=0.05)
    parser.add_argument("--keep-threshold", type=float, default=0.5)
    parser.add_argument("--aggregator", default="ambiguity")
    parser.add_argument(
        "--processes",
        type=int,
        default=available_cpus(),
        help="worker processes that score images (default: the instance's CPUs)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run post-processing; bad input prints its message and exits 2."""
    args = build_parser().parse_args(argv)
    try:
        config = ConfidenceConfig(
            aggregator=args.aggregator,
            score_floor=args.score_floor,
            keep_threshold=args.keep_threshold,
        )
        stats = postprocess(
            args.records,
            args.predictions,
            args.output,
            confidence=config,
            image_size=read_image_size,
            processes=args.processes,
        )
    except BoxloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(stats_json(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
