"""Run the label-efficiency benchmark: ``python -m bench.label_efficiency --help``."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.label_efficiency.configs import CONFIGS, overrides_for
from boxloop.local.demo import DemoSettings, run_demo
from boxloop.local.runners import DetectorSettings


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration on one seed's dataset; the figures the table needs."""
    out = Path(args.work) / name.replace("/", "_") / f"seed-{seed}"
    settings = DemoSettings(
        n_images=args.images,
        seed=seed,
        difficulty=args.difficulty,
        detector=DetectorSettings(image_steps=args.image_steps, seed=seed),
        overrides={**overrides_for(name), "seed": seed, "max_iterations": args.max_iterations},
    )
    start = time.monotonic()
    result = run_demo(out, settings)
    wall_s = time.monotonic() - start
    report, evaluation = result.report, result.reference_eval or {}
    counts = report["counts"]
    auto, whole = evaluation.get("auto") or {}, evaluation.get("all") or {}
    return {
        "config": name,
        "seed": seed,
        "images": counts["total"],
        "wall_s": round(wall_s, 1),
        "iterations": report["iterations"],
        "stop_reason": report["stop_reason"],
        "human_labels": counts["human"],
        "auto_labels": counts["auto"],
        "unlabeled": counts["unlabeled"],
        "auto_share": counts["auto"] / counts["total"],
        "auto_exact_match": auto.get("exact_match"),
        "auto_mean_iou": auto.get("mean_iou"),
        "dataset_exact_match": whole.get("exact_match"),
        "dataset_mean_iou": whole.get("mean_iou"),
        "cost_usd": report["cost"]["total_usd"],
        "all_human_usd": report["all_human_cost"]["total_usd"],
        "curve": [
            {
                "iteration": it["iteration"],
                "human": it["counts"]["human"],
                "auto": it["counts"]["auto"],
            }
            for it in report["per_iteration"]
        ],
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (population std) per configuration over seeds."""
    keys = (
        "human_labels",
        "auto_share",
        "auto_exact_match",
        "auto_mean_iou",
        "dataset_exact_match",
        "cost_usd",
        "all_human_usd",
        "wall_s",
    )
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        summary[name] = {"seeds": len(mine)}
        for key in keys:
            values = [r[key] for r in mine if r[key] is not None]
            summary[name][key] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            }
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run every (configuration, seed), write the results JSON as rows finish."""
    parser = argparse.ArgumentParser(prog="python -m bench.label_efficiency")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--image-steps", type=int, default=1600)
    parser.add_argument("--difficulty", type=float, default=0.3)
    parser.add_argument("--max-iterations", type=int, default=8)
    parser.add_argument("--work", default="/tmp/boxloop-bench")
    parser.add_argument("--out", default="bench/label_efficiency/results.json")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        for name in args.configs:
            rows.append(run_one(name, seed, args))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "curve"}), flush=True)
            Path(args.out).write_text(
                json.dumps(
                    {"settings": vars(args), "rows": rows, "summary": summarize(rows)}, indent=2
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
