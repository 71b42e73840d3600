"""CLI: ``python -m bench.scale --records 100000 1000000 --out bench/scale/results.json``.

Runs the workflow's steps over each N synthetic images (see ``bench.scale.pipeline``), merges
the figures into the results file (a run replaces an earlier run of the same N, so N can be run
one at a time) and rewrites the generated block of the Scale section of the benchmarks doc.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from bench.scale.pipeline import REPO_ROOT, bench_config, run_pipeline
from bench.scale.report import machine, render, update_doc

DEFAULT_WORK = Path("/tmp/boxloop-bench-scale")
SHM = Path("/dev/shm")


def _progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _load(path: Path, fresh: bool) -> dict[str, Any]:
    if fresh or not path.exists():
        return {"runs": [], "commands": []}
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each N; exit 1 when a step fails (its log is named)."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--records", type=int, nargs="+", required=True, help="N, one or more")
    parser.add_argument("--out", type=Path, default=Path("bench/scale/results.json"))
    parser.add_argument("--doc", default=str(REPO_ROOT / "docs" / "benchmarks.md"),
                        help="the doc whose Scale section is regenerated ('' to skip)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="scratch folder for the run roots (emptied per N)")
    parser.add_argument("--scratch", default=str(SHM) if SHM.is_dir() else "",
                        help="where the transform's .out files go (a tmpfs; '' for --work)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep each N's files after its run")
    parser.add_argument("--fresh", action="store_true", help="drop earlier runs from --out")
    args = parser.parse_args(argv)
    command = "python -m bench.scale " + shlex.join(sys.argv[1:] if argv is None else argv)
    results = _load(args.out, args.fresh)
    results["config"] = bench_config().to_dict()
    if command not in results["commands"]:
        results["commands"].append(command)
    for n in args.records:
        started = time.strftime("%Y-%m-%d %H:%M %Z")
        load_start = machine()["load_avg"]
        _progress(f"N={n:,}: start (load {load_start})")
        try:
            scratch = Path(args.scratch) / f"boxloop-bench-scale-n{n}" if args.scratch else None
            run = run_pipeline(n, args.work / f"n{n}", seed=args.seed, keep=args.keep,
                               progress=_progress, scratch_dir=scratch)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        run.update(started=started, load_avg_start=load_start, load_avg_end=machine()["load_avg"])
        results["runs"] = [r for r in results["runs"] if r["records"] != n] + [run]
        results["runs"].sort(key=lambda r: r["records"])
        results["machine"] = machine()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        if args.doc:
            update_doc(Path(args.doc), render(results))
        _progress(f"N={n:,}: done; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
