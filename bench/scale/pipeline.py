"""One benchmark run: the workflow's steps in state-machine order over N synthetic images.

The parent keeps the Step Functions state (``run``, ``labeling``, ``training``, ``inference``)
exactly as the ASL's ``ResultPath``s build it, hands each step the event its state's
``Parameters`` would, and plays the non-Lambda states itself (the labeling job, training,
batch transform) with files from ``synth``. Each step runs in a fresh Python process
(``bench.scale.child``) so that its peak RSS is its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.scale import synth
from bench.scale.measure import (
    BYTES_PER_MIB,
    KIB_PER_MIB,
    StepFigures,
    compact_size,
    spawn,
    tree_sizes,
)
from boxloop.core.config import LoopConfig
from boxloop.core.labels import LabelConfig
from boxloop.steps.run import CONFIG_ENV

if TYPE_CHECKING:
    from collections.abc import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
BATCH_SIZE = 1000
"""Human batch per iteration; see bench_config for the two other settings that differ."""
TRAINING_METRIC = 0.42
"""The validation:mAP the simulated training job reports (the gate's floor is 0)."""


def bench_config() -> LoopConfig:
    """The stack config the benchmark's Lambdas read: defaults, 3 classes, batch of 1,000.

    Two settings keep the workload the recorded figures measured: auto-labels are not deferred
    to the last model, and the target is mean IoU (the synthetic predictions' jitter certifies
    no exact-match threshold), so that the first round's filter step writes auto-labels, the
    pass whose cost at scale is measured.
    """
    return LoopConfig(
        labels=LabelConfig(synth.CLASS_NAMES),
        batch_size=BATCH_SIZE,
        defer_auto_labels=False,
        target_metric="mean_iou",
    )


class Pipeline:
    """The run's state and working folders; ``step`` runs one step and records its figures."""

    def __init__(
        self,
        n_images: int,
        work: Path,
        *,
        seed: int = 0,
        python: str = sys.executable,
        progress: Callable[[str], None] | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        self.n_images = n_images
        self.scratch_dir = scratch_dir
        self.progress = progress or (lambda message: None)
        self.seed = seed
        self.python = python
        self.work = work
        self.root = work / "runs" / f"bench-{n_images}"
        self.spill = work / "spill"
        self.logs = work / "logs"
        self.figures: list[StepFigures] = []
        self.external_s: dict[str, float] = {}
        self.state: dict[str, Any] = {}
        self.env = {
            **os.environ,
            CONFIG_ENV: json.dumps(bench_config().to_dict()),
            "TMPDIR": str(self.spill),
            "POWERTOOLS_SERVICE_NAME": "boxloop-bench",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }

    def prepare(self) -> None:
        """Empty the working folder and create its parts.

        With ``scratch_dir``, the run's ``tmp/`` (where batch transform writes one ``.out`` per
        image) is a link to it: a million small files are quick to delete on tmpfs, while on an
        ext4 mounted with ``discard`` each unlink waits for the device.
        """
        self.cleanup()
        for path in (self.root, self.spill, self.logs):
            path.mkdir(parents=True)
        if self.scratch_dir is not None:
            self.scratch_dir.mkdir(parents=True)
            (self.work / "tmp").symlink_to(self.scratch_dir, target_is_directory=True)

    def cleanup(self) -> None:
        """Delete the working folder (and the scratch folder)."""
        for path in (self.work, self.scratch_dir):
            if path is not None and (path.exists() or path.is_symlink()):
                subprocess.run(["rm", "-rf", "--", str(path)], check=True)

    def external(self, name: str, action: Callable[[], Any]) -> Any:
        """Time a simulated non-Lambda state (not part of the step figures)."""
        started = time.perf_counter()
        value = action()
        self.external_s[name] = round(time.perf_counter() - started, 2)
        self.progress(f"N={self.n_images:,} simulated {name}: {self.external_s[name]} s")
        return value

    def step(self, step: str, event: dict[str, Any], iteration: int) -> Any:
        """Run one step in a fresh process; returns its payload.

        Raises:
            RuntimeError: when the step fails (its log names the error).
        """
        tag = f"{len(self.figures):02d}-{step}-{iteration}"
        event_path = self.logs / f"{tag}.event.json"
        result_path = self.logs / f"{tag}.result.json"
        event_path.write_text(json.dumps(event), encoding="utf-8")
        before = tree_sizes(self.root)
        load = os.getloadavg()[0]
        argv = [self.python, "-m", "bench.scale.child", step, str(event_path), str(result_path)]
        if step == "ingest":
            argv += ["--root", str(self.root)]
        code, usage = spawn(argv, cwd=REPO_ROOT, env=self.env, log=self.logs / f"{tag}.log")
        if code != 0 or not result_path.exists():
            raise RuntimeError(f"step {step} failed (exit {code}); see {self.logs / tag}.log")
        result = json.loads(result_path.read_text(encoding="utf-8"))
        after = tree_sizes(self.root)
        written = sum(size for path, size in after.items() if before.get(path) != size)
        payload = result["payload"]
        self._store(step, payload)
        peak = usage.ru_maxrss / KIB_PER_MIB
        baseline = result["baseline_maxrss_kib"] / KIB_PER_MIB
        self.figures.append(
            StepFigures(
                step=step,
                iteration=iteration,
                wall_s=round(result["wall_s"], 2),
                cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                peak_rss_mib=round(peak, 1),
                baseline_rss_mib=round(baseline, 1),
                step_rss_mib=round(peak - baseline, 1),
                spill_peak_mib=round(result["spill_peak_bytes"] / BYTES_PER_MIB, 1),
                output_mib=round(written / BYTES_PER_MIB, 1),
                read_mib=round(result["read_bytes"] / BYTES_PER_MIB, 1),
                payload_bytes=compact_size(payload),
                state_bytes=compact_size(self.state),
                load_avg=round(load, 2),
            )
        )
        f = self.figures[-1]
        self.progress(
            f"N={self.n_images:,} {step}#{iteration}: {f.wall_s} s wall, {f.cpu_s} s CPU, "
            f"peak {f.peak_rss_mib} MiB (+{f.step_rss_mib}), payload {f.payload_bytes} B"
        )
        return payload

    def _store(self, step: str, payload: Any) -> None:
        """Apply the state's ``ResultPath``."""
        if step in ("ingest", "merge_human_labels", "filter_low_confidence"):
            self.state["run"] = payload
        elif step == "prepare_labeling":
            self.state["labeling"] = payload
        elif step == "prepare_training":
            self.state["training"] = payload
        elif step == "prepare_inference":
            self.state["inference"] = payload
        elif step == "postprocess":
            self.state["inference"]["postprocess"]["result"] = payload
        elif step == "finalize":
            self.state["result"] = payload

    # The non-Lambda states, played with synthetic files.

    def label(self) -> None:
        """The Label state: a Ground Truth job's output manifest and ResultSelector."""
        labeling = self.state["labeling"]
        job_name = synth.first_attempt(labeling["job_name"])
        output = Path(labeling["output_config"]["S3OutputPath"]) / job_name
        manifest = output / "manifests" / "output" / "output.manifest"
        counters = self.external(
            f"label-{self.state['run']['iteration']}",
            lambda: synth.write_labeling_output(
                Path(labeling["input_manifest"]), manifest, labeling["label_attribute"],
                job_name, self.seed,
            ),
        )
        labeling["result"] = {
            "job_name": job_name,
            "status": "Completed",
            "output_manifest": str(manifest),
            "counters": counters,
        }

    def train(self) -> None:
        """The Train state's ResultSelector (CreateModel stores nothing)."""
        training = self.state["training"]
        training["result"] = {
            "job_name": synth.first_attempt(training["job_name"]),
            "model_artifacts": f"{training['output_config']['S3OutputPath']}/model.tar.gz",
            "metrics": [{"MetricName": "validation:mAP", "Value": TRAINING_METRIC}],
        }

    def transform(self) -> None:
        """The Transform state: one ``.out`` per listed image."""
        inference = self.state["inference"]
        self.external(
            f"transform-{self.state['run']['iteration']}",
            lambda: synth.write_transform_output(
                Path(inference["records"]), Path(inference["output_path"]), self.seed
            ),
        )
        inference["transform"] = {
            "job_name": synth.first_attempt(inference["job_name"]),
            "status": "Completed",
        }


def run_pipeline(
    n_images: int,
    work: Path,
    *,
    seed: int = 0,
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
    scratch_dir: Path | None = None,
) -> dict[str, Any]:
    """Generate the input, run every step in order, and return the figures of the run.

    The order is the state machine's for one full iteration and the start of the next:
    ingest, prepare-labeling (iteration 0), the labeling job, merge, prepare-training, training,
    prepare-inference, batch transform, post-processing, filter-low-confidence, then
    prepare-labeling of iteration 1 (now with confidences and a threshold), its labeling job,
    its merge, and finalize on the resulting ledger.
    """
    pipe = Pipeline(n_images, work, seed=seed, progress=progress, scratch_dir=scratch_dir)
    pipe.prepare()
    manifest = work / "input" / "input.manifest"
    manifest_bytes = pipe.external(
        "input", lambda: synth.write_input_manifest(manifest, n_images, seed)
    )
    pipe.state = {"manifest": str(manifest)}
    pipe.step("noop", {}, 0)
    pipe.step("ingest", {"execution": f"bench-{n_images}", "input": dict(pipe.state)}, 0)
    for iteration in (0, 1):
        pipe.step("prepare_labeling", {"run": pipe.state["run"]}, iteration)
        pipe.label()
        pipe.step(
            "merge_human_labels",
            {"run": pipe.state["run"], "labeling": pipe.state["labeling"]},
            iteration,
        )
        if iteration == 1:
            break
        pipe.step("prepare_training", {"run": pipe.state["run"]}, iteration)
        pipe.train()
        pipe.step(
            "prepare_inference",
            {"run": pipe.state["run"], "training": pipe.state["training"]},
            iteration,
        )
        pipe.transform()
        pipe.step("postprocess", {"inference": pipe.state["inference"]}, iteration)
        pipe.step(
            "filter_low_confidence",
            {"run": pipe.state["run"], "inference": pipe.state["inference"]},
            iteration,
        )
    pipe.step("finalize", {"run": pipe.state["run"]}, 1)
    noop, *steps = pipe.figures
    result = {
        "records": n_images,
        "input_manifest_mib": round(manifest_bytes / BYTES_PER_MIB, 1),
        "interpreter_rss_mib": noop.peak_rss_mib,
        "simulated_s": pipe.external_s,
        "counts": pipe.state["result"]["counts"],
        "final_state_bytes": compact_size(pipe.state),
        "steps": [asdict(f) for f in steps],
    }
    if not keep:
        pipe.cleanup()
    return result
