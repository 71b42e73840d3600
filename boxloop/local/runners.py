"""Local runners for the SageMaker jobs the state machine starts: train, transform, process.

Each runner receives the Create* request exactly as SageMaker would and honours its contract:
training reads the augmented-manifest channels and writes ``<output>/<job>/output/model.tar.gz``
plus a ``validation:mAP`` metric; transform reads a ManifestFile and writes ``<output>/<key>.out``
in the built-in algorithm's format; processing mounts its S3 inputs under a local
``/opt/ml/processing`` stand-in and runs ``processing/postprocess.py`` on them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.clients import client
from boxloop.aws.s3 import (
    S3Uri,
    download_file,
    download_prefix,
    iter_lines,
    read_text,
    try_read_text,
    upload_dir,
    upload_file,
    write_text,
)
from boxloop.core.errors import BoxloopError
from boxloop.core.formats.groundtruth import record_to_label
from boxloop.core.manifests import iter_json_lines, record_id
from boxloop.local.emulator import JobResult
from boxloop.local.progress import StepMeter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from boxloop.core.detections import Detections

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESSING_ROOT = "/opt/ml/processing"
MODEL_TAR = "model.tar.gz"


class ImageCache:
    """Local copies of images keyed by their full URI (never by file name, which collides)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, source_ref: str) -> Path:
        """The local file of an image, fetched on first use."""
        if not source_ref.startswith("s3://"):
            return Path(source_ref)
        uri = S3Uri.parse(source_ref)
        local = self.root / uri.bucket / uri.key
        if not local.is_file():
            download_file(source_ref, local)
        return local


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorSettings:
    """The local detector's budget: what replaces the built-in algorithm's epochs locally.

    A fixed number of image-steps per round, with warm start, keeps every iteration's training
    time flat as labels accumulate (growing epochs made late rounds 7-14 minutes).

    Predictions are made at ``image_size`` 320 on the image and its mirror image, averaged;
    training sees 256-px windows at that scale, so it costs what 256-px training did. On a demo
    run's last model this raised the share of open images ranked right at 92 % from 82 %
    (256 px, one pass) to 91 %, for three times the inference arithmetic, which the backbone's
    inference folds mostly paid back (docs/benchmarks.md).
    """

    image_steps: int = 2400
    image_size: int = 320
    batch_size: int = 8
    seed: int = 0
    score_floor: float = 0.05
    crop_size: int | None = 256
    flip_test: bool = True
    reference_epochs: int | None = None
    """The run's configured ``epochs``: a training request for other epochs (the longer last
    model, ``last_model_epochs_factor``) gets ``image_steps`` scaled by their ratio. ``None``
    keeps ``image_steps`` whatever the request says."""

    def steps_for(self, hyperparameters: dict[str, str]) -> int:
        """The image-steps budget for a training request's hyperparameters."""
        epochs = hyperparameters.get("epochs")
        if not self.reference_epochs or epochs is None:
            return self.image_steps
        return max(1, round(self.image_steps * int(epochs) / self.reference_epochs))


def _labeled_samples(uri: str, attr: str, images: ImageCache) -> list[tuple[Path, Detections]]:
    samples = []
    for item in iter_json_lines(iter_lines(uri), source=uri):
        if isinstance(item, BoxloopError):
            raise item
        line_no, obj = item
        label = record_to_label(obj, attr, image_id=record_id(obj["source-ref"]))
        if label is None:
            raise BoxloopError(f"{uri}:{line_no}: no '{attr}' label on a training line")
        samples.append((images.path(obj["source-ref"]), label.detections))
    return samples


def _training_samples(train_uri: str, attr: str, images: ImageCache) -> list[tuple[Path, Any]]:
    """The train channel's samples plus the empty images prepare-training wrote beside it.

    The built-in algorithm cannot take an image without boxes, so prepare-training leaves them
    out of its channels (``EMPTY_MANIFEST``); the local detector learns from such negatives.
    """
    from boxloop.steps.prepare_training import EMPTY_MANIFEST

    samples = _labeled_samples(train_uri, attr, images)
    empty_uri = f"{train_uri.rsplit('/', 1)[0]}/{EMPTY_MANIFEST}"
    if try_read_text(empty_uri) is not None:
        samples += _labeled_samples(empty_uri, attr, images)
    return samples


def _channels(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]}


def make_training_runner(
    work_dir: Path,
    settings: DetectorSettings,
    images: ImageCache,
    class_names: tuple[str, ...],
    on_done: Callable[[str, Any], None] | None = None,
) -> Callable[[dict[str, Any]], JobResult]:
    """A runner for CreateTrainingJob that trains the local PyTorch detector."""

    def run(request: dict[str, Any]) -> JobResult:
        from boxloop.local.detector.artifact import pack_model_tar, unpack_model_tar
        from boxloop.local.detector.train import train_detector

        job = request["TrainingJobName"]
        channels = _channels(request)
        attr = channels["train"]["AttributeNames"][1]
        job_dir = work_dir / "training" / job
        init = None
        if "model" in channels:
            tar = download_file(channels["model"]["S3Uri"], job_dir / "init" / MODEL_TAR)
            init = unpack_model_tar(tar, job_dir / "init")
        result = train_detector(
            _training_samples(channels["train"]["S3Uri"], attr, images),
            num_classes=int(request["HyperParameters"]["num_classes"]),
            out_dir=job_dir,
            init_weights=init,
            image_steps=settings.steps_for(request["HyperParameters"]),
            image_size=settings.image_size,
            batch_size=settings.batch_size,
            seed=settings.seed,
            class_names=class_names,
            validation_samples=_labeled_samples(channels["validation"]["S3Uri"], attr, images),
            crop_size=settings.crop_size,
            on_step=StepMeter("Train", unit="image-steps", per="image-step"),
        )
        tar = pack_model_tar(result.model_path, job_dir / MODEL_TAR)
        artifacts = str(
            S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"]).join(job, "output", MODEL_TAR)
        )
        upload_file(tar, artifacts)
        if on_done:
            on_done(job, result)
        return JobResult(
            status="Completed",
            outputs={"ModelArtifacts": {"S3ModelArtifacts": artifacts}},
            metrics={"validation:mAP": result.validation_map or 0.0},
        )

    return run


def iter_manifest_file(uri: str) -> Iterator[tuple[str, str]]:
    """``(image URI, key)`` of a SageMaker ManifestFile: ``[{"prefix": ...}, "key", ...]``."""
    entries = json.loads(read_text(uri))
    if not entries or not isinstance(entries[0], dict) or "prefix" not in entries[0]:
        if entries == []:
            return
        raise BoxloopError(f'{uri}: a ManifestFile starts with {{"prefix": "s3://..."}}')
    prefix = entries[0]["prefix"]
    for key in entries[1:]:
        yield prefix + key, key


def make_transform_runner(
    work_dir: Path, settings: DetectorSettings, images: ImageCache
) -> Callable[[dict[str, Any]], JobResult]:
    """A runner for CreateTransformJob that predicts with the local detector."""

    def run(request: dict[str, Any]) -> JobResult:
        from boxloop.local.detector.artifact import unpack_model_tar
        from boxloop.local.detector.predict import predict_images

        job = request["TransformJobName"]
        model = client("sagemaker").describe_model(ModelName=request["ModelName"])
        tar = download_file(
            model["PrimaryContainer"]["ModelDataUrl"], work_dir / "transform" / job / MODEL_TAR
        )
        model_path = unpack_model_tar(tar, tar.parent)
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        items = list(iter_manifest_file(source))
        output = S3Uri.parse(request["TransformOutput"]["S3OutputPath"])
        rows_per_image = predict_images(
            model_path,
            (images.path(uri) for uri, _ in items),
            score_floor=settings.score_floor,
            flip_test=settings.flip_test,
        )
        meter = StepMeter("Transform", unit="images", per="image")
        meter(0, len(items))
        for done, ((_, key), rows) in enumerate(zip(items, rows_per_image, strict=True), 1):
            write_text(str(output.join(key + ".out")), json.dumps({"prediction": rows}))
            meter(done, len(items))
        return JobResult(status="Completed")

    return run


def _load_processing_script() -> Any:
    script = REPO_ROOT / "processing" / "postprocess.py"
    if not script.is_file():
        raise BoxloopError(f"{script} is missing: the local engine runs from a boxloop checkout")
    spec = importlib.util.spec_from_file_location("boxloop_processing_postprocess", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_processing_runner(work_dir: Path) -> Callable[[dict[str, Any]], JobResult]:
    """A runner for CreateProcessingJob that runs ``processing/postprocess.py`` as the job would.

    The ``code`` input is not downloaded: locally the script and boxloop come from this
    checkout, the same files the stack uploads for the real job. What the script prints (its
    statistics as one JSON line) goes to ``<work>/processing/<job>.log``, where the real job's
    CloudWatch stream would have it, not into the run's progress output; its stderr (an error
    message) still reaches the terminal.
    """
    script = _load_processing_script()

    def run(request: dict[str, Any]) -> JobResult:
        root = work_dir / "processing" / request["ProcessingJobName"]
        shutil.rmtree(root, ignore_errors=True)

        def local(path: str) -> Path:
            return root / Path(path).relative_to(PROCESSING_ROOT)

        for item in request.get("ProcessingInputs", []):
            if item["InputName"] == "code":
                continue
            s3_input = item["S3Input"]
            download_prefix(s3_input["S3Uri"], local(s3_input["LocalPath"]))
        outputs = request["ProcessingOutputConfig"]["Outputs"]
        args = [
            "--records",
            str(local(f"{PROCESSING_ROOT}/input/records/records.jsonl")),
            "--predictions",
            str(local(f"{PROCESSING_ROOT}/input/predictions")),
            "--output",
            str(local(outputs[0]["S3Output"]["LocalPath"])),
            *request["AppSpecification"].get("ContainerArguments", []),
        ]
        log = root.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
            code = script.main(args)
        if code != 0:
            return JobResult(
                status="Failed", failure_reason=f"AlgorithmError: exit code {code}; log: {log}"
            )
        for output in outputs:
            upload_dir(local(output["S3Output"]["LocalPath"]), output["S3Output"]["S3Uri"])
        return JobResult(status="Completed")

    return run
