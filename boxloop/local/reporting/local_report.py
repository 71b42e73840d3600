"""The local run's ``report.json``: Finalize's report, told in the user's files.

Finalize writes the report inside the emulator, where every output is an ``s3://`` URI of
the emulated bucket that vanishes with the run. The local copy names the files in the output
folder instead (``OUT/output.manifest``, the model), and adds the human effort that the
labeling jobs' stats files measured (``effort.human_effort``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from boxloop.local.reporting.effort import human_effort, read_labeling_stats
from boxloop.steps.run import RunPaths

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path


def localize(
    value: Any, locations: Mapping[str, Path], *, run_root: str, run_files: Path | None
) -> Any:
    """``value`` with each emulator URI replaced by the local file that holds its content.

    A URI in ``locations`` becomes that path; any other under ``run_root`` becomes its copy in
    ``run_files`` when the run kept its files (``--keep-run-files``), else stays as it is (the
    emulator's name is all there is). Dicts and lists are walked; other values are kept.
    """
    if isinstance(value, dict):
        return {
            k: localize(v, locations, run_root=run_root, run_files=run_files)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [localize(v, locations, run_root=run_root, run_files=run_files) for v in value]
    if not isinstance(value, str):
        return value
    if value in locations:
        return str(locations[value])
    prefix = run_root.rstrip("/") + "/"
    if run_files is not None and value.startswith(prefix):
        return str(run_files / value[len(prefix) :])
    return value


def write_local_report(
    report: dict[str, Any],
    report_file: Path,
    *,
    run_root: str,
    locations: Mapping[str, Path],
    run_files: Path | None = None,
) -> dict[str, Any]:
    """Localize Finalize's ``report``, add ``human_effort``, write it to ``report_file``.

    Runs inside the emulator (the labeling jobs' stats files are read from its bucket).

    Args:
        report: Finalize's report.
        report_file: Where the local ``report.json`` goes (usually where it was downloaded).
        run_root: The run's folder in the emulated bucket, ``s3://<bucket>/runs/<run id>``.
        locations: Emulator URI -> the local file holding it (output manifest, model...).
        run_files: ``OUT/run-files`` when the run kept every file it wrote, else ``None``.

    Returns:
        The report as written.
    """
    stats = read_labeling_stats(RunPaths(root=run_root), int(report.get("iterations") or 0))
    local = localize(report, locations, run_root=run_root, run_files=run_files)
    local["human_effort"] = human_effort(stats)
    report_file.write_text(json.dumps(local, indent=2), encoding="utf-8")
    return local
