"""Measuring a step: its process's own rusage, and the sizes of what it returned and wrote."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

KIB_PER_MIB = 1024
BYTES_PER_MIB = 1024 * 1024


def compact_size(obj: Any) -> int:
    """Bytes of ``obj`` as compact UTF-8 JSON, as Step Functions counts a payload."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFigures:
    """What one step cost (sizes in MiB, times in seconds, payloads in bytes).

    Attributes:
        step: The step (module) name.
        iteration: The loop iteration it ran in.
        wall_s: Wall time of the step call alone (no interpreter start, no imports).
        cpu_s: User + system CPU time of the whole child process.
        peak_rss_mib: The child's peak resident set (what Lambda reports as memory used).
        baseline_rss_mib: The child's peak RSS after its imports, before the call.
        step_rss_mib: ``peak_rss_mib - baseline_rss_mib``: what the step itself added.
        spill_peak_mib: Peak size of the step's open temporary files (sort spills).
        output_mib: Size of the files the step wrote under the run root.
        read_mib: Bytes the call read through system calls (files and spills).
        payload_bytes: The step's return value (its state's result) as compact JSON.
        state_bytes: The whole execution state after the step, as compact JSON.
        load_avg: The machine's 1-minute load average when the step started.
    """

    step: str
    iteration: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    baseline_rss_mib: float
    step_rss_mib: float
    spill_peak_mib: float
    output_mib: float
    read_mib: float
    payload_bytes: int
    state_bytes: int
    load_avg: float


def tree_sizes(root: Path) -> dict[Path, int]:
    """Every file under ``root`` with its size in bytes (empty when ``root`` is missing)."""
    return {p: p.stat().st_size for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def spawn(
    argv: list[str], *, cwd: Path, env: dict[str, str], log: Path
) -> tuple[int, resource.struct_rusage]:
    """Run a child process; its exit code and its own rusage (``os.wait4``, not a sum)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage
