"""One benchmark run, in a worker process (a module of its own so spawn can import it)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.label_efficiency.configs import overrides_for
from boxloop.local.demo import DemoSettings, run_demo
from boxloop.local.runners import DetectorSettings


def run_one(name: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """One configuration on one seed's dataset; the figures the table needs."""
    out = Path(settings["work"]) / name.replace("/", "_") / f"seed-{seed}"
    demo = DemoSettings(
        n_images=settings["images"],
        seed=seed,
        difficulty=settings["difficulty"],
        detector=DetectorSettings(image_steps=settings["image_steps"], seed=seed),
        overrides={
            **overrides_for(name),
            "seed": seed,
            "max_iterations": settings["max_iterations"],
        },
        # Every round's ledger and predictions, so calibration rules can be compared offline
        # on the rounds a run went through (about 70 MB a run).
        keep_run_files=True,
    )
    start = time.monotonic()
    result = run_demo(out, demo)
    wall_s = time.monotonic() - start
    report, evaluation = result.report, result.reference_eval or {}
    counts = report["counts"]
    auto, whole = evaluation.get("auto") or {}, evaluation.get("all") or {}
    return {
        "config": name,
        "seed": seed,
        "images": counts["total"],
        "wall_s": round(wall_s, 1),
        "cpus": len(os.sched_getaffinity(0)),
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


def pin_worker(cpu_queue: Any) -> None:
    """Give each worker process its own cores, so the detector's torch threads don't fight."""
    os.sched_setaffinity(0, cpu_queue.get())
