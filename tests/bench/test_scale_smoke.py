"""Smoke test of the scale benchmark: the whole CLI at 2,000 images, so it cannot rot.

It checks what the benchmark must get right whatever the timings (none are asserted): every
step runs through its real entry point in its own process, the state stays small, the ledger
adds up, and the doc's generated block is rewritten without touching the other sections.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 2000
STEP_FUNCTIONS_STATE_LIMIT_BYTES = 256 * 1024
EXPECTED_STEPS = [
    ("ingest", 0),
    ("prepare_labeling", 0),
    ("merge_human_labels", 0),
    ("prepare_training", 0),
    ("prepare_inference", 0),
    ("postprocess", 0),
    ("filter_low_confidence", 0),
    ("prepare_labeling", 1),
    ("merge_human_labels", 1),
    ("finalize", 1),
]
OTHER_SECTION = "## Label efficiency\n\nHand-written figures that the scale run must keep.\n"


def test_scale_cli_runs_every_step_and_keeps_other_doc_sections(tmp_path: Path) -> None:
    # GIVEN a benchmarks doc that already has another engineer's section
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n## Scale\n\nProse.\n\n{OTHER_SECTION}", encoding="utf-8")
    out = tmp_path / "results.json"
    work = tmp_path / "work"

    # WHEN the CLI runs at a small N
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--records", str(N_IMAGES), "--out", str(out),
         "--doc", str(doc), "--work", str(work), "--scratch", ""],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )

    # THEN every step ran, in state-machine order, and each figure is present
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    (run,) = results["runs"]
    assert run["records"] == N_IMAGES
    assert [(s["step"], s["iteration"]) for s in run["steps"]] == EXPECTED_STEPS
    for step in run["steps"]:
        assert step["peak_rss_mib"] >= step["baseline_rss_mib"] > 0, step
        assert 0 < step["payload_bytes"] < 4096, step
        assert step["state_bytes"] < STEP_FUNCTIONS_STATE_LIMIT_BYTES, step
    # AND the final ledger holds every image exactly once, some labeled by the model
    counts = run["counts"]
    assert counts["total"] == N_IMAGES
    assert counts["human"] + counts["auto"] + counts["unlabeled"] == N_IMAGES
    assert counts["auto"] > 0
    # AND the doc got the generated block inside Scale, the other section untouched
    text = doc.read_text(encoding="utf-8")
    assert f"### {N_IMAGES:,} records" in text
    assert text.index("## Scale") < text.index("bench.scale:begin") < text.index(OTHER_SECTION)
    assert text.endswith(OTHER_SECTION)
    # AND nothing is left behind without --keep
    assert not (work / f"n{N_IMAGES}").exists()
