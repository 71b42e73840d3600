"""The label-efficiency report: summary figures, the generated doc block and the plot.

The runs themselves take hours (they are ``boxloop demo`` runs, covered by tests/local); this
checks what turns their rows into the published table, from the results file alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.label_efficiency.configs import CONFIGS, overrides_for
from bench.label_efficiency.report import human_label_saving, render, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]


def _row(config: str, seed: int, human: int, auto: int) -> dict[str, Any]:
    total = 100
    return {
        "config": config,
        "seed": seed,
        "images": total,
        "wall_s": 60.0 + seed,
        "cpus": 1,
        "iterations": 3,
        "stop_reason": "all_labeled",
        "human_labels": human,
        "auto_labels": auto,
        "unlabeled": total - human - auto,
        "auto_share": auto / total,
        "auto_exact_match": 0.9 if auto else None,
        "auto_mean_iou": 0.8 if auto else None,
        "dataset_exact_match": 0.95,
        "dataset_mean_iou": 0.85,
        "cost_usd": 0.26 * human + 0.08 * auto,
        "all_human_usd": 26.0,
        "curve": [
            {"iteration": 0, "human": human // 2, "auto": 0},
            {"iteration": 1, "human": human, "auto": auto},
        ],
    }


ROWS = [
    _row("boxloop/least_confidence", 0, 40, 60),
    _row("boxloop/least_confidence", 1, 50, 50),
    _row("boxloop/random", 0, 80, 20),
    _row("boxloop/random", 1, 60, 40),
]


def test_summary_means_and_spread_per_configuration() -> None:
    summary = summarize(ROWS)
    assert list(summary) == ["boxloop/least_confidence", "boxloop/random"]
    mine = summary["boxloop/least_confidence"]
    assert mine["seeds"] == [0, 1]
    assert mine["human_labels"] == {"mean": 45.0, "std": 5.0}
    assert mine["auto_share"]["mean"] == pytest.approx(0.55)
    # 45 human labels against random's 70 on seeds 0 and 1: 1 - 45/70 fewer
    share, seeds = human_label_saving(ROWS)
    assert share == pytest.approx(1 - 45 / 70)
    assert seeds == [0, 1]


def test_saving_compares_only_seeds_both_configurations_ran() -> None:
    rows = [*ROWS, _row("boxloop/least_confidence", 2, 10, 90)]
    share, seeds = human_label_saving(rows)
    assert seeds == [0, 1]
    assert share == pytest.approx(1 - 45 / 70)


def test_runs_without_auto_labels_have_no_auto_accuracy() -> None:
    summary = summarize([_row("aws-sample/fixed-0.5", 0, 100, 0)])
    assert summary["aws-sample/fixed-0.5"]["auto_exact_match"] == {"mean": None, "std": 0.0}
    assert "n/a" in render(_document([_row("aws-sample/fixed-0.5", 0, 100, 0)]))


def _document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    settings = {"images": 100, "image_steps": 400, "difficulty": 0.3, "max_iterations": 8}
    return {
        "settings": {**settings, "work": "/tmp/x", "jobs": 2},
        "rows": rows,
        "summary": summarize(rows),
    }


def test_render_lists_every_run_and_the_saving() -> None:
    text = render(_document(ROWS))
    assert "--images 100 --seeds 0 1 --image-steps 400" in text
    assert text.count("| `boxloop/random` | ") == 3  # one summary row, two run rows
    assert "35.7% fewer" in text


def test_every_configuration_is_a_valid_loop_config() -> None:
    from boxloop.core.config import LoopConfig
    from boxloop.core.labels import LabelConfig

    for name in CONFIGS:
        LoopConfig(labels=LabelConfig(("a", "b")), **overrides_for(name))


def test_the_reference_systems_auto_label_in_every_round_as_they_do() -> None:
    from boxloop.core.config import LoopConfig
    from boxloop.core.labels import LabelConfig

    for name in CONFIGS:
        config = LoopConfig(labels=LabelConfig(("a", "b")), **overrides_for(name))
        ours = name.startswith("boxloop/")
        assert config.defer_auto_labels == ours, name
        assert (config.last_model_epochs_factor > 1.0) == ours, name


def test_report_only_rewrites_the_doc_block_and_plot_and_keeps_prose(tmp_path: Path) -> None:
    # GIVEN a results file and a doc with hand-written prose in two sections
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_document(ROWS)), encoding="utf-8")
    doc = tmp_path / "benchmarks.md"
    prose = "# Benchmarks\n\n## Scale\n\nScale prose.\n\n## Label efficiency\n\nFindings.\n"
    doc.write_text(prose, encoding="utf-8")
    plot = tmp_path / "img" / "curves.png"

    # WHEN the report is regenerated twice (the second must replace, not append)
    for _ in range(2):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.label_efficiency",
                "--report-only",
                "--images",
                "100",
                "--out",
                str(results),
                "--doc",
                str(doc),
                "--plot",
                str(plot),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    # THEN the prose is intact, the block is there once, and the plot is a PNG
    text = doc.read_text(encoding="utf-8")
    assert "Scale prose." in text and "Findings." in text
    assert text.count("bench.label_efficiency:begin") == 1
    assert "--image-steps 400" in text  # the settings the rows were run with
    assert text.index("Findings.") < text.index("bench.label_efficiency:begin")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resuming_refuses_rows_run_with_other_settings(tmp_path: Path) -> None:
    from bench.label_efficiency.__main__ import main

    results = tmp_path / "results.json"
    results.write_text(json.dumps(_document(ROWS)), encoding="utf-8")  # image_steps 400
    argv = ["--images", "100", "--image-steps", "1280", "--max-iterations", "8"]
    with pytest.raises(SystemExit, match="image_steps=400"):
        main([*argv, "--out", str(results), "--doc", "", "--plot", ""])
