"""A simulated crowd: N noisy workers redraw reference labels, and their boxes are consolidated."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boxloop.core.consolidation import ConsolidationConfig, consolidate
from boxloop.core.detections import Detections
from boxloop.core.errors import ConfigError
from boxloop.core.formats.groundtruth import Label
from boxloop.labeling.output import ground_truth_now
from boxloop.local.workforce.base import LabelTask, TaskResult
from boxloop.local.workforce.lookup import LabelLookup
from boxloop.local.workforce.noise import AnnotatorNoise, draw_worker_boxes
from boxloop.local.workforce.sources import read_groundtruth

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

SECONDS_PER_BOX = 35.0
"""Time to draw one good box (ILSVRC protocol, Papadopoulos et al. 2016): the cost report's
unit of human effort."""

EXPIRED_REASON = (
    "simulated: the task expired before a worker submitted it "
    "(TaskAvailabilityLifetimeInSeconds passed)"
)


def _check_rate(name: str, value: object, problems: list[str]) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0.0 <= value <= 1.0)
    ):
        problems.append(f"{name} must be a number in [0, 1], got {value!r}")


class SimulatedWorkforce:
    """Workers that label from reference boxes with realistic annotator noise.

    Each of the ``n`` workers of a task redraws the image's reference boxes through
    `draw_worker_boxes` with a generator seeded by ``(seed, record_id, worker index)``, so a
    task's labels are the same in every run and do not depend on which other images share its
    job or in what order they come. The ``n`` drawings are merged by
    `boxloop.core.consolidation.consolidate`, as Ground Truth's consolidation Lambda merges its
    workers' boxes, and the result is a human `Label` stamped with the job's ``job-name``.

    A task fails (expires) with probability ``failure_rate``, drawn from ``(seed, job name,
    record_id)``: deterministic for one job, but independent between jobs, so an image that
    expired once can succeed when a later job retries it.

    Reference labels are found by the rule of `boxloop.local.workforce.lookup`: the full
    source-ref, or a relative path or file name it ends with. An image without a reference is an
    error naming it, never an empty label: an empty label would teach the model that the image
    has no objects.
    """

    name = "simulated"

    def __init__(
        self,
        reference: Mapping[str, Detections] | Iterable[tuple[str, Detections]],
        *,
        noise: AnnotatorNoise | None = None,
        seed: int = 0,
        workers_per_object: int | None = None,
        consolidation: ConsolidationConfig | None = None,
        failure_rate: float = 0.0,
        seconds_per_box: float = SECONDS_PER_BOX,
        seconds_per_image: float = 0.0,
        source: str = "reference labels",
        clock: Callable[[], str] = ground_truth_now,
    ) -> None:
        """Set up the crowd.

        Args:
            reference: Source-ref (or relative path or file name) -> true boxes, in pixels.
            noise: Every worker's error rates; `AnnotatorNoise` defaults when ``None``.
            seed: Run seed; change it for another, equally plausible crowd.
            workers_per_object: Workers per image; ``None`` takes the job's
                ``NumberOfHumanWorkersPerDataObject``.
            consolidation: How the workers' boxes are merged; the defaults when ``None``.
            failure_rate: Probability in ``[0, 1]`` that a task expires without a label.
            seconds_per_box: Simulated time for one worker to draw one box.
            seconds_per_image: Simulated time per worker per image on top of the boxes (looking
                at the image, submitting), also spent on images without objects.
            source: Where the reference came from, for messages.
            clock: Returns the ``creation-date`` text of each label.

        Raises:
            ConfigError: Listing every invalid argument.
        """
        problems: list[str] = []
        _check_rate("failure_rate", failure_rate, problems)
        if workers_per_object is not None and (
            isinstance(workers_per_object, bool)
            or not isinstance(workers_per_object, int)
            or workers_per_object < 1
        ):
            problems.append(f"workers_per_object must be an int >= 1, got {workers_per_object!r}")
        for name, value in (
            ("seconds_per_box", seconds_per_box),
            ("seconds_per_image", seconds_per_image),
        ):
            if not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be seconds >= 0, got {value!r}")
        if problems:
            raise ConfigError(problems)
        items = reference.items() if isinstance(reference, Mapping) else reference
        self._lookup: LabelLookup[Detections] = LabelLookup(items, source=source)
        self.noise = noise or AnnotatorNoise()
        self.seed = seed
        self.workers_per_object = workers_per_object
        self.consolidation = consolidation or ConsolidationConfig()
        self.failure_rate = float(failure_rate)
        self.seconds_per_box = float(seconds_per_box)
        self.seconds_per_image = float(seconds_per_image)
        self._clock = clock

    @classmethod
    def from_groundtruth(
        cls, location: str, *, attr: str | None = None, **kwargs: Any
    ) -> SimulatedWorkforce:
        """A crowd whose reference is a Ground Truth manifest (S3 URI or local path).

        Lines without a label are left out (their images then have no reference); class ids are
        kept as the manifest writes them.

        Raises:
            ManifestError: a bad line of the manifest, located.
        """
        kwargs.setdefault("source", location)
        return cls(read_groundtruth(location, attr=attr), **kwargs)

    def __len__(self) -> int:
        return len(self._lookup)

    def draw(
        self, record_id: str, reference: Detections, n_workers: int, class_ids: Sequence[int] = ()
    ) -> list[Detections]:
        """Every worker's raw boxes for one image (before consolidation), reproducibly.

        Args:
            record_id: The image's record id; with ``seed`` and the worker index it seeds
                each worker's generator.
            reference: The true boxes; their ``image_id`` is replaced by ``record_id``.
            n_workers: How many workers draw.
            class_ids: The job's classes (for confusions and extras); the reference's when empty.
        """
        reference = Detections(record_id, reference.image_wh, reference.boxes)
        return [
            draw_worker_boxes(
                reference,
                self.noise,
                random.Random(f"boxloop-worker:{self.seed}:{record_id}:{worker}"),
                class_ids,
            )
            for worker in range(n_workers)
        ]

    def _expires(self, task: LabelTask) -> bool:
        if self.failure_rate <= 0.0:
            return False
        rng = random.Random(f"boxloop-expiry:{self.seed}:{task.job.name}:{task.record_id}")
        return rng.random() < self.failure_rate

    def _reference(self, task: LabelTask, match: tuple[str, Detections] | None) -> Detections:
        if match is None:
            raise ConfigError(
                [
                    f"{self._lookup.source}: no reference label for {task.source_ref!r} "
                    f"(record {task.record_id}); the simulated workforce labels only images its "
                    "reference covers"
                ]
            )
        reference = match[1]
        if task.image_wh is not None and tuple(task.image_wh) != reference.image_wh:
            raise ConfigError(
                [
                    f"{self._lookup.source}: the reference label {match[0]!r} is for a "
                    f"{reference.image_wh[0]}x{reference.image_wh[1]} image, but "
                    f"{task.source_ref!r} is {task.image_wh[0]}x{task.image_wh[1]}"
                ]
            )
        return reference

    def label(self, tasks: Sequence[LabelTask]) -> Iterator[TaskResult]:
        """Label every task, in task order.

        Raises:
            ConfigError: an image has no reference label (or an ambiguous one), or its
                reference is for another image size.
        """
        matches = self._lookup.find_all([task.source_ref for task in tasks])
        references = [self._reference(task, matches[task.source_ref]) for task in tasks]
        for task, reference in zip(tasks, references, strict=True):
            if self._expires(task):
                yield TaskResult.failed(task.record_id, EXPIRED_REASON)
                continue
            n_workers = self.workers_per_object or task.job.workers_per_object
            drawings = self.draw(task.record_id, reference, n_workers, list(task.job.class_map))
            merged = consolidate(drawings, self.consolidation)
            seconds = sum(self.seconds_per_image + self.seconds_per_box * len(d) for d in drawings)
            yield TaskResult(
                record_id=task.record_id,
                label=Label(
                    detections=merged.detections,
                    confidences=merged.confidences,
                    class_map=dict(task.job.class_map),
                    human_annotated=True,
                    job_name=task.job.job_name,
                    creation_date=self._clock(),
                ),
                n_workers=n_workers,
                worker_seconds=seconds,
            )
