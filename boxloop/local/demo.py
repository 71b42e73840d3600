"""``boxloop demo``: generate a labeled demo dataset and run the whole loop on it offline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import open_for_write
from boxloop.core.formats.groundtruth import Label, label_to_fields
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import write_json_line
from boxloop.labeling.output import ground_truth_now
from boxloop.local.app import LocalRunRequest, LocalRunResult, read_manifest_lines, run_local
from boxloop.local.defaults import DEMO_IMAGE_STEPS, DEMO_IMAGES
from boxloop.local.runners import DetectorSettings
from boxloop.local.workforce import SimulatedWorkforce

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.local.engine import StepEvent

REFERENCE_MANIFEST = "reference.manifest"
INPUT_MANIFEST = "input.manifest"
LABELS_FILE = "labels.json"
REFERENCE_ATTRIBUTE = "reference"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    """Size and budget of the demo: defaults finish within ~10 minutes on 2 CPU cores.

    The loop's settings are LoopConfig's defaults, the measured recipe every run starts from
    (``boxloop settings``); ``overrides`` changes some for this demo only.
    """

    n_images: int = DEMO_IMAGES
    n_classes: int = 3
    seed: int = 0
    difficulty: float = 0.3
    density: float = 1.0
    detector: DetectorSettings = field(
        default_factory=lambda: DetectorSettings(image_steps=DEMO_IMAGE_STEPS)
    )
    overrides: dict[str, Any] = field(default_factory=dict)
    keep_run_files: bool = False


def write_demo_data(
    out_dir: Path,
    *,
    n_images: int,
    n_classes: int,
    seed: int,
    difficulty: float,
    density: float = 1.0,
) -> tuple[LabelConfig, Path, Path]:
    """Generate the images and write ``reference.manifest``, ``input.manifest``, ``labels.json``.

    Returns:
        The label config, the input manifest (source-refs only) and the reference manifest.
    """
    from boxloop.local.demo_data import generate_demo_dataset

    dataset = generate_demo_dataset(
        out_dir,
        n_images=n_images,
        n_classes=n_classes,
        seed=seed,
        difficulty=difficulty,
        density=density,
    )
    labels = LabelConfig(dataset.class_names)
    (out_dir / LABELS_FILE).write_text(json.dumps(labels.to_label_category_config(), indent=2))
    now = ground_truth_now()
    reference, inputs = out_dir / REFERENCE_MANIFEST, out_dir / INPUT_MANIFEST
    with open_for_write(str(reference)) as ref, open_for_write(str(inputs)) as inp:
        for path, detections in dataset.items:
            source_ref = str(path.resolve())
            label = Label(
                detections=detections,
                confidences=tuple(1.0 for _ in detections),
                class_map=labels.class_map,
                human_annotated=True,
                job_name="boxloop-demo-data",
                creation_date=now,
            )
            write_json_line(
                ref, {"source-ref": source_ref, **label_to_fields(label, REFERENCE_ATTRIBUTE)}
            )
            write_json_line(inp, {"source-ref": source_ref})
    return labels, inputs, reference


def run_demo(
    out_dir: Path,
    settings: DemoSettings | None = None,
    on_event: Callable[[StepEvent], None] | None = None,
) -> LocalRunResult:
    """Generate the demo data under ``out_dir/data`` and run the loop into ``out_dir``."""
    settings = settings or DemoSettings()
    labels, inputs, reference = write_demo_data(
        out_dir / "data",
        n_images=settings.n_images,
        n_classes=settings.n_classes,
        seed=settings.seed,
        difficulty=settings.difficulty,
        density=settings.density,
    )
    workforce = SimulatedWorkforce.from_groundtruth(
        str(reference), attr=REFERENCE_ATTRIBUTE, seed=settings.seed
    )
    request = LocalRunRequest(
        manifest_lines=read_manifest_lines(inputs),
        base_dir=out_dir,
        labels=labels,
        workforce=workforce,
        out_dir=out_dir,
        overrides=settings.overrides,
        detector=settings.detector,
        reference=reference,
        run_name="demo",
        keep_run_files=settings.keep_run_files,
    )
    return run_local(request, on_event)
