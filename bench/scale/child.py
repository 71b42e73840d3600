"""Run ONE workflow step in this (fresh) process and write what it cost as JSON.

``python -m bench.scale.child STEP EVENT.json RESULT.json [--root DIR]``

The step is called through the deployed entry point itself: ``lambdas/<step>/app.py``'s
``lambda_handler`` for the Lambda steps, and ``processing/postprocess.py``'s ``main`` for the
Processing job. Two substitutions make that possible offline, and nothing else differs:

* ingest: the handler names the run root ``s3://$BOXLOOP_BUCKET/runs/<run id>``; here the
  parsed request gets a local root instead, then goes through the library's ``ingest`` and
  ``default_config`` that the handler's ``ingest_step`` calls (the config comes from
  ``BOXLOOP_CONFIG``, as on Lambda); each image check reads a synthetic PNG header
  (``synth.image_bytes``) instead of a ranged S3 GET, and no deadline applies (no Lambda
  context), so every image is checked in this one pass.
* postprocess: ``read_image_size`` (a ranged S3 GET per image) becomes a lookup of the
  synthetic image's size.

Memory is read with ``getrusage`` after the imports (the baseline) and at the end (the peak);
a sampler thread reads the size of the step's open temporary files (the external sort's spills,
which Lambda keeps in ``/tmp``) every 0.2 s; ``/proc/self/io`` gives the bytes read and written.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws import asl

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_STEPS = tuple(asl.LAMBDA_STEPS)
STEPS = (*LAMBDA_STEPS, "postprocess", "noop")
SAMPLE_EVERY_S = 0.2
INGEST_BUCKET = "bench-unused"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ingest(root: str) -> Callable[[dict[str, Any]], Any]:
    from bench.scale import synth
    from boxloop.steps.ingest import IngestRequest, ingest
    from boxloop.steps.run import default_config

    def call(event: dict[str, Any]) -> Any:
        request = IngestRequest.from_event(event, bucket=INGEST_BUCKET)
        request = dataclasses.replace(request, root=root)
        config = default_config().with_overrides(request.overrides or {})
        return ingest(request, config, read_image=synth.image_bytes).to_json()

    return call


def _postprocess(module: ModuleType) -> Callable[[dict[str, Any]], Any]:
    from bench.scale import synth

    module.read_image_size = synth.image_size

    def call(event: dict[str, Any]) -> Any:
        inference = event["inference"]
        argv = [
            *inference["postprocess"]["arguments"],
            "--records", inference["records"],
            "--predictions", inference["output_path"],
            "--output", inference["postprocess"]["output_path"],
        ]
        code = module.main(argv)
        if code:
            raise RuntimeError(f"processing/postprocess.py exited {code}")
        # The state's ResultSelector: the job's name (first attempt) and status.
        return {
            "job_name": synth.first_attempt(inference["postprocess"]["job_name"]),
            "status": "Completed",
        }

    return call


def load_step(step: str, root: str | None) -> Callable[[dict[str, Any]], Any]:
    """The callable for ``step``: event in, the payload the state machine stores out."""
    if step == "noop":
        return lambda event: {}
    if step == "postprocess":
        return _postprocess(_load(REPO_ROOT / "processing" / "postprocess.py", "bench_processing"))
    module = _load(REPO_ROOT / "lambdas" / step / "app.py", f"bench_lambda_{step}")
    if step == "ingest":
        if not root:
            raise ValueError("ingest needs --root (the local run root)")
        return _ingest(root)
    return lambda event: module.lambda_handler(event, None)


class SpillSampler(threading.Thread):
    """Tracks the peak total size of this process's open files under ``directory``.

    Unlinked temporary files still show in ``/proc/self/fd`` (as ``... (deleted)``), and
    ``stat`` through the fd link gives their current size.
    """

    def __init__(self, directory: str) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.peak_bytes = 0
        self._done = threading.Event()

    def sample(self) -> None:
        """Add up the open files now."""
        total = 0
        for link in Path("/proc/self/fd").iterdir():
            try:
                if str(link.readlink()).startswith(self.directory):
                    total += link.stat().st_size
            except OSError:
                continue
        self.peak_bytes = max(self.peak_bytes, total)

    def run(self) -> None:
        """Sample until stopped."""
        while not self._done.wait(SAMPLE_EVERY_S):
            self.sample()

    def stop(self) -> None:
        """Take a last sample and end the thread."""
        self._done.set()
        self.join()
        self.sample()


def _proc_io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): int(v) for k, v in pairs}


def run_step(step: str, event: dict[str, Any], root: str | None) -> dict[str, Any]:
    """Load the step, call it once, and return its payload with the measurements."""
    call = load_step(step, root)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    io_before = _proc_io()
    sampler = SpillSampler(str(Path(tempfile.gettempdir()).resolve()))
    sampler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    payload = call(event)
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    sampler.stop()
    io_after = _proc_io()
    return {
        "step": step,
        "payload": payload,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "baseline_maxrss_kib": baseline_kib,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "spill_peak_bytes": sampler.peak_bytes,
        "read_bytes": io_after.get("rchar", 0) - io_before.get("rchar", 0),
        "written_bytes": io_after.get("wchar", 0) - io_before.get("wchar", 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; the result JSON is written only when the step succeeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("event", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--root", help="the local run root (ingest only)")
    args = parser.parse_args(argv)
    event = json.loads(args.event.read_text(encoding="utf-8"))
    result = run_step(args.step, event, args.root)
    args.result.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
