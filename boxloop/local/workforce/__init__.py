"""The local workforce: who answers the local engine's Ground Truth labeling jobs.

`Workforce` is the interface the labeling job calls (`LabelTask` in, `TaskResult` out);
`SimulatedWorkforce` labels from reference boxes with annotator noise and N-worker
consolidation, `ImportWorkforce` serves labels made elsewhere (COCO, VOC, Ground Truth, YOLO),
and `make_labeling_runner` turns either into the ``create_labeling_job`` runner of
`boxloop.local.emulator`.
"""

from __future__ import annotations

from boxloop.local.workforce.base import (
    JobSpec,
    LabelTask,
    TaskResult,
    Workforce,
    ground_truth_now,
)
from boxloop.local.workforce.imported import ImportWorkforce
from boxloop.local.workforce.lookup import LabelLookup
from boxloop.local.workforce.noise import AnnotatorNoise, draw_worker_boxes
from boxloop.local.workforce.results import FAILURE_REASON_KEY, JobStats
from boxloop.local.workforce.runner import (
    MAX_CONCURRENT_TASKS,
    STATS_FILE,
    LabelingRunner,
    make_labeling_runner,
)
from boxloop.local.workforce.simulated import SECONDS_PER_BOX, SimulatedWorkforce

__all__ = [
    "FAILURE_REASON_KEY",
    "MAX_CONCURRENT_TASKS",
    "SECONDS_PER_BOX",
    "STATS_FILE",
    "AnnotatorNoise",
    "ImportWorkforce",
    "JobSpec",
    "JobStats",
    "LabelLookup",
    "LabelTask",
    "LabelingRunner",
    "SimulatedWorkforce",
    "TaskResult",
    "Workforce",
    "draw_worker_boxes",
    "ground_truth_now",
    "make_labeling_runner",
]
