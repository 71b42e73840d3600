"""The machine description and the generated Markdown of the "Scale" section."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.docblock import replace_block
from stacks.config import LAMBDA_EPHEMERAL_MIB

SCALE_HEADING = "## Scale"
AIM_WALL_S = 60.0
AIM_PEAK_MIB = 1024.0
PAYLOAD_FLAT_BYTES = 64
"""Growth allowed between the smallest and the largest N: the extra digits of the counts."""


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.rstrip()
    except (OSError, subprocess.CalledProcessError):
        return "(unavailable)"


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "(unknown)"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "nproc": _run(["nproc"]),
        "cpu_model": cpu_model(),
        "free_g": _run(["free", "-g"]),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }


def _fmt(value: float) -> str:
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def _label(step: dict[str, Any]) -> str:
    return f"{step['step']} #{step['iteration']}"


def _step_table(run: dict[str, Any]) -> list[str]:
    lines = [
        "| step | wall s | CPU s | peak RSS MiB | after imports MiB | step MiB | spill MiB "
        "| output MiB | read MiB | payload B | state B | load |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in run["steps"]:
        lines.append(
            f"| {_label(s)} | {_fmt(s['wall_s'])} | {_fmt(s['cpu_s'])} "
            f"| {_fmt(s['peak_rss_mib'])} | {_fmt(s['baseline_rss_mib'])} "
            f"| {_fmt(s['step_rss_mib'])} | {_fmt(s['spill_peak_mib'])} "
            f"| {_fmt(s['output_mib'])} | {_fmt(s['read_mib'])} | {s['payload_bytes']:,} "
            f"| {s['state_bytes']:,} | {s['load_avg']:.1f} |"
        )
    return lines


def _tmp_need(step: dict[str, Any]) -> str:
    """Upper bound of the step's /tmp use on Lambda: its sort spills plus its outputs.

    ``open_for_write`` spools each S3 output to a temporary file until it is uploaded, so on
    Lambda every output also lives in /tmp for a while; a Processing job has its own volume.
    """
    if step["step"] == "postprocess":
        return "n/a"
    need = step["spill_peak_mib"] + step["output_mib"]
    return _fmt(need) if need <= LAMBDA_EPHEMERAL_MIB else f"**{_fmt(need)}**"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _aims_table(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    n_small, n_large = f"{small['records']:,}", f"{large['records']:,}"
    lines = [
        f"| step | wall s {n_small} | wall s {n_large} | CPU s {n_large} "
        f"| peak MiB {n_small} | peak MiB {n_large} | payload B {n_small} "
        f"| payload B {n_large} | <= {AIM_WALL_S:.0f} s | <= 1 GiB | payload flat "
        f"| /tmp MiB on Lambda {n_large} |",
        "|---|--:|--:|--:|--:|--:|--:|--:|:-:|:-:|:-:|--:|",
    ]
    by_label = {_label(s): s for s in small["steps"]}
    for big in large["steps"]:
        little = by_label.get(_label(big))
        if little is None:
            continue
        growth = big["payload_bytes"] - little["payload_bytes"]
        lines.append(
            f"| {_label(big)} | {_fmt(little['wall_s'])} | {_fmt(big['wall_s'])} "
            f"| {_fmt(big['cpu_s'])} | {_fmt(little['peak_rss_mib'])} "
            f"| {_fmt(big['peak_rss_mib'])} | {little['payload_bytes']:,} "
            f"| {big['payload_bytes']:,} | {_verdict(big['wall_s'] <= AIM_WALL_S)} "
            f"| {_verdict(big['peak_rss_mib'] <= AIM_PEAK_MIB)} "
            f"| {_verdict(growth <= PAYLOAD_FLAT_BYTES)} ({growth:+d} B) "
            f"| {_tmp_need(big)} |"
        )
    return lines


def render(results: dict[str, Any]) -> str:
    """The generated part of the Scale section, from a results document."""
    m = results["machine"]
    runs = sorted(results["runs"], key=lambda r: r["records"])
    out = [
        "### Commands",
        "",
        "```sh",
        *results.get("commands", []),
        "```",
        "",
        "### Machine",
        "",
        f"- `nproc`: {m['nproc']}; CPU: {m['cpu_model']}; Python {m['python']}; "
        f"Linux {m['kernel']}",
        "- `free -g`:",
        "",
        "```text",
        m["free_g"],
        "```",
        "",
    ]
    for run in runs:
        load = run.get("load_avg_start", [0.0])[0], run.get("load_avg_end", [0.0])[0]
        out += [
            f"### {run['records']:,} records",
            "",
            f"Run {run.get('started', '?')}; 1-minute load average {load[0]:.1f} at the start, "
            f"{load[1]:.1f} at the end (on {m['nproc']} cores). Input manifest "
            f"{run['input_manifest_mib']:,} MiB; bare interpreter {run['interpreter_rss_mib']} "
            f"MiB RSS; final ledger counts `{_counts_line(run['counts'])}`; whole execution state "
            f"at the end {run['final_state_bytes']:,} B. Simulated states (not in the table), "
            f"s: `{run['simulated_s']}`.",
            "",
            *_step_table(run),
            "",
        ]
    if len(runs) >= 2:
        out += [
            f"### Against the aims ({runs[0]['records']:,} vs {runs[-1]['records']:,} records)",
            "",
            *_aims_table(runs[0], runs[-1]),
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def _counts_line(counts: dict[str, Any]) -> str:
    keys = ("total", "human", "auto", "unlabeled", "exhausted")
    return ", ".join(f"{k} {counts[k]:,}" for k in keys if k in counts)


def update_doc(path: Path, generated: str) -> None:
    """Replace the generated block of the Scale section; everything else stays as it is."""
    replace_block(path, name="bench.scale", heading=SCALE_HEADING, generated=generated)
