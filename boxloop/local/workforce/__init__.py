"""The local workforce: who answers the local engine's Ground Truth labeling jobs.

`Workforce` is the interface the labeling job calls (`LabelTask` in, `TaskResult` out);
`SimulatedWorkforce` labels from reference boxes with annotator noise and N-worker
consolidation, `ImportWorkforce` serves labels made elsewhere (COCO, VOC, Ground Truth, YOLO),
and `make_labeling_runner` turns either into the ``create_labeling_job`` runner of
`boxloop.local.emulator`.
"""

from __future__ import annotations

from boxloop.labeling.output import STATS_FILE
from boxloop.local.workforce.base import (
    JobSpec,
    LabelTask,
    TaskResult,
    Workforce,
)
from boxloop.local.workforce.imported import ImportWorkforce
from boxloop.local.workforce.lookup import LabelLookup
from boxloop.local.workforce.noise import AnnotatorNoise, draw_worker_boxes
from boxloop.local.workforce.runner import (
    MAX_CONCURRENT_TASKS,
    LabelingRunner,
    make_labeling_runner,
)
from boxloop.local.workforce.simulated import SECONDS_PER_BOX, SimulatedWorkforce

__all__ = [
    "MAX_CONCURRENT_TASKS",
    "SECONDS_PER_BOX",
    "STATS_FILE",
    "AnnotatorNoise",
    "ImportWorkforce",
    "JobSpec",
    "LabelLookup",
    "LabelTask",
    "LabelingRunner",
    "SimulatedWorkforce",
    "TaskResult",
    "Workforce",
    "draw_worker_boxes",
    "make_labeling_runner",
]
