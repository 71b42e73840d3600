"""A whole local run: inputs into the emulator, one execution, outputs back into a folder.

The output folder holds what the AWS run leaves in S3 (``output.manifest``, ``report.json``,
the final model) plus what a local user wants next to it: ``report.html``, a COCO export and,
when a reference is known, the accuracy of the labels against it.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import download_file, download_prefix, iter_keys, iter_lines, open_for_write
from boxloop.core.config import LoopConfig
from boxloop.core.errors import ManifestError
from boxloop.core.formats.groundtruth import find_label_attributes
from boxloop.core.image_size import image_files
from boxloop.core.manifests import iter_json_lines, write_json_line
from boxloop.core.model_state import ModelState
from boxloop.local.engine import (
    BUCKET,
    LocalRunError,
    StepEvent,
    local_aws,
    register_handlers,
    register_runners,
    run_execution,
    upload_images,
)
from boxloop.local.runners import DetectorSettings
from boxloop.local.workforce import make_labeling_runner

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.core.labels import LabelConfig
    from boxloop.local.workforce import Workforce

OUTPUT_MANIFEST = "output.manifest"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REFERENCE_EVAL = "reference_eval.json"
COCO_JSON = "coco.json"
MODEL_TAR = "model/model.tar.gz"
LEDGER_ON_FAILURE = "ledger.jsonl"
RUN_FILES = "run-files"


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalRunRequest:
    """Everything a local run needs.

    Attributes:
        manifest_lines: The input manifest's objects; ``source-ref`` are local image paths
            (absolute, or relative to ``base_dir``). Labeled lines keep their labels.
        base_dir: Where relative source-refs are resolved.
        labels: The class names.
        workforce: Who labels what the loop sends to humans.
        out_dir: Where the outputs go.
        overrides: LoopConfig settings for this run.
        detector: The local detector's budget.
        reference: A reference manifest to measure accuracy against (the demo's).
        run_name: The execution name.
        resume_ledger: A ledger written by an earlier (failed) local run, to resume from.
        keep_run_files: Copy every file the run wrote to its (emulated) bucket into
            ``<out>/run-files/``: each step's ledger version, every iteration's inference
            records, predictions and report, the labeling jobs' manifests. Their source-refs
            are the emulated ``s3://boxloop-local/images/...`` URIs.
    """

    manifest_lines: list[dict[str, Any]]
    base_dir: Path
    labels: LabelConfig
    workforce: Workforce
    out_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    reference: Path | None = None
    run_name: str = "local"
    resume_ledger: Path | None = None
    keep_run_files: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalRunResult:
    """Where the outputs are, and the final report."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]
    reference_eval: dict[str, Any] | None


def manifest_from_images(images_dir: Path) -> list[dict[str, Any]]:
    """One ``{"source-ref": path}`` line per image file under ``images_dir`` (sorted)."""
    return [{"source-ref": str(p.resolve())} for p in image_files(images_dir)]


def read_manifest_lines(path: Path) -> list[dict[str, Any]]:
    """A local input manifest's objects; bad lines are reported by ``boxloop validate``."""
    lines = []
    for item in iter_json_lines(iter_lines(str(path)), source=str(path)):
        if isinstance(item, ManifestError):
            raise item
        lines.append(item[1])
    return lines


def label_attribute_of(manifest: Path) -> str | None:
    """The label attribute of the first labeled line of a manifest (``None`` if unlabeled)."""
    for item in iter_json_lines(iter_lines(str(manifest)), source=str(manifest)):
        if not isinstance(item, ManifestError):
            found = find_label_attributes(item[1])
            if found:
                return found[0]
    return None


def _rewrite_refs(src: Path, dest: Path, mapping: dict[str, str]) -> None:
    """Copy a manifest, turning emulated ``s3://`` source-refs back into the user's paths."""
    with open_for_write(str(dest)) as out:
        for item in iter_json_lines(iter_lines(str(src)), source=str(src)):
            if isinstance(item, ManifestError):
                raise item
            obj = item[1]
            obj["source-ref"] = mapping.get(obj["source-ref"], obj["source-ref"])
            obj.pop("id", None)  # derived from the emulated URI; recomputed from source-ref
            write_json_line(out, obj)


def _save_latest_ledger(root: str, out_dir: Path, mapping: dict[str, str]) -> Path | None:
    keys = sorted(iter_keys(f"{root}/ledger/"))
    if not keys:
        return None
    tmp = download_file(f"s3://{BUCKET}/{keys[-1]}", out_dir / ".ledger.emulated")
    _rewrite_refs(tmp, out_dir / LEDGER_ON_FAILURE, mapping)
    tmp.unlink()
    return out_dir / LEDGER_ON_FAILURE


def _interrupted(request: LocalRunRequest, mapping: dict[str, str]) -> LocalRunError:
    """Ctrl-C: stop the workforce, save the latest ledger, say how to resume.

    Labels people already submitted in the browser are in ``<out>/labeling/journal.jsonl``;
    a resumed run finds them there by image and does not ask for them again.
    """
    close = getattr(request.workforce, "close", None)
    if close is not None:
        # The open labeling job now fails inside the emulator; its log would only repeat this.
        logging.getLogger("moto").setLevel(logging.CRITICAL)
        close()
    roots = sorted(
        {key.split("/ledger/")[0] for key in iter_keys(f"s3://{BUCKET}/runs/") if "/ledger/" in key}
    )
    saved = (
        _save_latest_ledger(f"s3://{BUCKET}/{roots[-1]}", request.out_dir, mapping)
        if roots
        else None
    )
    where = f"; resume with --resume {saved}" if saved else "; nothing was labeled yet"
    return LocalRunError(f"the run was interrupted{where}")


def _stage_inputs(request: LocalRunRequest) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Upload images and the input (manifest or resume ledger); returns input URI, mapping."""
    lines = request.manifest_lines
    if request.resume_ledger:
        lines = read_manifest_lines(request.resume_ledger)
    mapping = upload_images(lines, request.base_dir)
    back = {v: k for k, v in mapping.items()}
    key = "input/ledger.jsonl" if request.resume_ledger else "input/input.manifest"
    uri = f"s3://{BUCKET}/{key}"
    with open_for_write(uri) as out:
        for line in lines:
            write_json_line(out, {**line, "source-ref": back[line["source-ref"]]})
    execution_input = {"ledger" if request.resume_ledger else "manifest": uri}
    return uri, mapping, execution_input


def run_local(
    request: LocalRunRequest, on_event: Callable[[StepEvent], None] | None = None
) -> LocalRunResult:
    """Run the loop locally to the end and collect its outputs in ``request.out_dir``.

    Raises:
        LocalRunError: the execution failed; the latest ledger is saved as
            ``<out>/ledger.jsonl`` first, so no label is lost and the run can be resumed.
    """
    out = request.out_dir
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".work"
    config = LoopConfig.from_dict(
        {"labels": list(request.labels.class_names), **request.overrides},
        source="local run settings",
    )
    with local_aws():
        _, mapping, execution_input = _stage_inputs(request)
        register_handlers(config)
        register_runners(
            work,
            replace(
                request.detector,
                reference_epochs=int(config.hyperparameters.get("epochs", 0)) or None,
            ),
            make_labeling_runner(
                request.workforce, image_dir=work / "label-images", source_refs=mapping
            ),
            request.labels.class_names,
        )
        try:
            run = run_execution(execution_input, name=request.run_name, on_event=on_event)
        except KeyboardInterrupt:
            raise _interrupted(request, mapping) from None
        run_files = out / RUN_FILES
        if request.keep_run_files:
            shutil.rmtree(run_files, ignore_errors=True)
            download_prefix(f"{run.root}/", run_files)
        if run.status != "SUCCEEDED" or not run.output:
            saved = _save_latest_ledger(run.root, out, mapping)
            where = (
                f"; the ledger is saved in {saved} (resume with --resume {saved})" if saved else ""
            )
            if request.keep_run_files:
                where += f"; every file the run wrote is in {run_files}"
            raise LocalRunError(
                f"the run ended {run.status}: {run.error}: {(run.cause or '')[:2000]}{where}"
            )
        files = {"output_manifest": out / OUTPUT_MANIFEST, "report": out / REPORT_JSON}
        if request.keep_run_files:
            files["run_files"] = run_files
        tmp = download_file(run.output["output_manifest"], work / "output.manifest")
        _rewrite_refs(tmp, files["output_manifest"], mapping)
        download_file(run.output["report"], files["report"])
        report = json.loads(files["report"].read_text())
        model = ModelState.from_json(report["model"]) if report.get("model") else None
        artifacts = model.artifacts if model else None
        if artifacts:
            files["model"] = download_file(artifacts, out / MODEL_TAR)
        from boxloop.local.reporting.local_report import write_local_report

        report = write_local_report(
            report,
            files["report"],
            run_root=run.root,
            locations={
                run.output["output_manifest"]: files["output_manifest"],
                run.output["report"]: files["report"],
                **({artifacts: files["model"]} if artifacts else {}),
            },
            run_files=files.get("run_files"),
        )
    shutil.rmtree(work / "processing", ignore_errors=True)
    return _finish(request, config, files, report)


def write_report_page(
    out: Path,
    report: dict[str, Any],
    output_manifest: Path,
    label_attribute: str,
    *,
    base_dir: Path,
    reference: Path | None = None,
    reference_attribute: str | None = None,
) -> tuple[Path, dict[str, Any] | None]:
    """Draw ``OUT/report.html`` for ``output_manifest``; returns it and the accuracy measured.

    With a ``reference`` manifest the labels are measured against it first, and the result is
    written to ``OUT/reference_eval.json`` (it records the reference's path, so ``boxloop
    review`` can measure again after corrections). A finished run and the end of a review
    both draw the page here.
    """
    from boxloop.local.reporting import (
        evaluate_against_reference,
        least_confident_auto_labels,
        write_html_report,
    )

    reference_eval = None
    if reference is not None:
        reference_eval = evaluate_against_reference(
            output_manifest, reference, label_attribute, reference_attribute=reference_attribute
        )
        (out / REFERENCE_EVAL).write_text(json.dumps(reference_eval, indent=2))
    gallery = least_confident_auto_labels(output_manifest, label_attribute, base_dir=base_dir)
    page = write_html_report(
        report, out / REPORT_HTML, reference_eval=reference_eval, gallery=gallery
    )
    return page, reference_eval


def _finish(
    request: LocalRunRequest, config: LoopConfig, files: dict[str, Path], report: dict[str, Any]
) -> LocalRunResult:
    """The local extras: accuracy against the reference, the HTML report, the COCO export."""
    from boxloop.local.export import export_coco

    out = request.out_dir
    files["report_html"], reference_eval = write_report_page(
        out,
        report,
        files["output_manifest"],
        config.label_attribute,
        base_dir=request.base_dir,
        reference=request.reference,
        reference_attribute=label_attribute_of(request.reference) if request.reference else None,
    )
    if reference_eval is not None:
        files["reference_eval"] = out / REFERENCE_EVAL
    files["coco"] = out / COCO_JSON
    export_coco(
        files["output_manifest"], files["coco"], config.label_attribute, request.labels.class_names
    )
    return LocalRunResult(out_dir=out, files=files, report=report, reference_eval=reference_eval)
