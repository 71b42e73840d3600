"""Run the label-efficiency benchmark: ``python -m bench.label_efficiency --help``.

Every (configuration, seed) pair is one ``boxloop demo`` run on that seed's generated dataset.
Finished rows are kept in the results file and skipped on the next call, so the hours this
takes on 2 cores can be spread over several sittings; ``--report-only`` redraws the doc block
and the plot from the results alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench.label_efficiency.configs import CONFIGS
from bench.label_efficiency.report import plot_curves, render, summarize, update_doc
from bench.label_efficiency.runner import pin_worker, run_one
from bench.scale.report import machine
from boxloop.core.config import default_of
from boxloop.local.defaults import DEMO_IMAGE_STEPS, DEMO_IMAGES

REPO_ROOT = Path(__file__).resolve().parents[2]


def _cpu_sets(jobs: int) -> list[set[int]]:
    cpus = sorted(os.sched_getaffinity(0))
    share = max(1, len(cpus) // jobs)
    return [set(cpus[i * share : (i + 1) * share] or cpus) for i in range(jobs)]


COMPARABLE = ("images", "image_steps", "difficulty", "max_iterations")
"""Settings that must match for rows to be resumed into one table."""


def _load(path: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished rows, if they were run with the same settings (else an error says so)."""
    if not path.exists():
        return []
    document = json.loads(path.read_text(encoding="utf-8"))
    before = document.get("settings", {})
    differ = [k for k in COMPARABLE if before.get(k) != settings[k]]
    if differ:
        found = ", ".join(f"{k}={before.get(k)}" for k in differ)
        raise SystemExit(
            f"{path} holds runs with other settings ({found}); pass the same values to resume, "
            "or another --out"
        )
    return list(document.get("rows", []))


def _save(path: Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    rows = sorted(rows, key=lambda r: (list(CONFIGS).index(r["config"]), r["seed"]))
    document = {"settings": settings, "machine": machine(), "rows": rows}
    document["summary"] = summarize(rows)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the missing (configuration, seed) pairs, then regenerate the doc block and plot."""
    parser = argparse.ArgumentParser(prog="python -m bench.label_efficiency")
    parser.add_argument("--images", type=int, default=DEMO_IMAGES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--image-steps", type=int, default=DEMO_IMAGE_STEPS)
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--max-iterations", type=int, default=default_of("max_iterations"))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, cores split evenly")
    parser.add_argument("--work", default="/tmp/boxloop-bench")
    parser.add_argument("--out", type=Path, default=Path("bench/label_efficiency/results.json"))
    parser.add_argument("--doc", default=str(REPO_ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--plot", default=str(REPO_ROOT / "docs" / "img" / "label_efficiency.png"))
    parser.add_argument("--report-only", action="store_true", help="redraw from --out, run nothing")
    args = parser.parse_args(argv)
    settings = {
        k: vars(args)[k]
        for k in ("images", "image_steps", "difficulty", "max_iterations", "work", "jobs")
    }
    if args.report_only:  # the rows as they are, whatever they were run with
        rows = json.loads(args.out.read_text(encoding="utf-8"))["rows"] if args.out.exists() else []
    else:
        rows = _load(args.out, settings)
    done = {(r["config"], r["seed"]) for r in rows}
    todo = [(c, s) for s in args.seeds for c in args.configs if (c, s) not in done]
    if todo and not args.report_only:
        context = multiprocessing.get_context("spawn")
        cpu_queue = context.Queue()
        for cpus in _cpu_sets(args.jobs):
            cpu_queue.put(cpus)
        with ProcessPoolExecutor(
            args.jobs, mp_context=context, initializer=pin_worker, initargs=(cpu_queue,)
        ) as pool:
            futures = {pool.submit(run_one, c, s, settings): (c, s) for c, s in todo}
            for future in as_completed(futures):
                row = future.result()
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
                _save(args.out, rows, settings)
    if rows:
        if not args.report_only:  # a report keeps the settings the rows were run with
            _save(args.out, rows, settings)
        if args.plot:
            plot_curves(rows, Path(args.plot))
        if args.doc:
            update_doc(Path(args.doc), render(json.loads(args.out.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
