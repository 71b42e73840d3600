"""The loop's settings: one frozen value built from defaults, stack context and run overrides."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from boxloop.core.calibration import CalibrationConfig
from boxloop.core.confidence import AggregatorName as Aggregator
from boxloop.core.confidence import ConfidenceConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig
from boxloop.core.manifests import SOURCE_REF
from boxloop.core.records import ID_KEY, PROVENANCE_KEY

TargetMetric = Literal["mean_iou", "exact_match"]
SelectionStrategy = Literal["least_confidence", "closest_to_threshold", "random"]
Preannotate = Literal["pool", "none"]

DEFAULT_HYPERPARAMETERS: dict[str, str] = {
    # The built-in Object Detection algorithm (SSD); values as the AWS samples use them, with
    # num_classes, num_training_samples and label_width derived per iteration, never set here.
    "base_network": "resnet-50",
    "use_pretrained_model": "1",
    "epochs": "30",
    "learning_rate": "0.001",
    "lr_scheduler_step": "10,20",
    "lr_scheduler_factor": "0.1",
    "optimizer": "sgd",
    "momentum": "0.9",
    "weight_decay": "0.0005",
    "overlap_threshold": "0.5",
    "nms_threshold": "0.45",
    "image_shape": "512",
    "mini_batch_size": "16",
}
DERIVED_HYPERPARAMETERS = frozenset({"num_classes", "num_training_samples", "label_width"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopConfig:
    """Everything a run of the loop needs to decide, besides the data itself.

    Defaults follow Ground Truth where it publishes a figure (expected mean IoU 0.6 for boxes;
    a 20 % validation share) and the prototype's lessons elsewhere (no auto-labeling before the
    validation set is large enough; a lower confidence bound on the calibrated accuracy).
    """

    labels: LabelConfig
    label_attribute: str = "boxes"
    job_prefix: str = "boxloop"
    seed: int = 0
    # Human labeling.
    seed_size: int = 100
    validation_fraction: float = 0.2
    test_fraction: float = 0.0
    batch_size: int = 100
    # Share of each batch given to a random audit of would-be auto-labels: open pool images the
    # validation images alone would accept but the applied threshold (raised by the pool's
    # test) held back. Their human labels join validation where the pool's images crowd.
    audit_share: float = 0.05
    selection_strategy: SelectionStrategy = "least_confidence"
    max_label_attempts: int = 2
    workers_per_object: int = 1
    # Pool images a model has scored reach the labeler with its kept boxes as suggestions
    # ("pool"), or never ("none"). Validation, audit and seed images never get them: their
    # labels measure the model, and anchoring them on its guesses would bias calibration.
    preannotate: Preannotate = "pool"
    task_title: str = "Draw a box around each object"
    task_description: str = "Draw a tight box around every visible object of the listed classes."
    task_time_limit_s: int = 300
    task_availability_s: int = 864_000
    max_concurrent_tasks: int = 1000
    # Ground Truth takes at most 100,000 objects per labeling job; a larger batch (iteration 0
    # at a million images: every unlabeled validation image plus the seed) is sent in jobs of
    # at most this many, the rest carried into the next ones.
    max_objects_per_labeling_job: int = 100_000
    # Auto-labeling decision.
    target_metric: TargetMetric = "mean_iou"
    # None: the target metric's default (boxloop.core.calibration.DEFAULT_TARGETS), so that
    # choosing exact_match alone does not keep mean IoU's 0.6.
    target_value: float | None = None
    confidence_level: float | None = 0.9
    min_validation: int = 50
    min_accepted: int = 20
    # A fixed image-confidence cut instead of calibration, as the AWS samples use (0.4/0.5):
    # for comparisons in benchmarks; calibration is the default because a fixed cut has no
    # accuracy guarantee.
    fixed_threshold: float | None = None
    # Auto-label only with the last model the loop trains (or when it stops sooner): earlier
    # rounds calibrate and report what they would label, and humans still get the least
    # confident batches, which are the same images either way. Images an early, weaker model
    # labels leave the pool, and later thresholds then meet harder survivors than validation
    # holds: the demo's rounds delivered 86-89 % exact against 0.90 bounds. Replayed on three
    # demo runs, the last model alone labeled 545-644 of the 661 open images at 89.6-91.9 %.
    # It costs inference on the whole pool every round.
    defer_auto_labels: bool = False
    # Train the last model (see last_training_iteration) this many times the configured
    # epochs. With defer_auto_labels it alone labels the pool, while earlier models only pick
    # the human batches: on the demo, twice the training for the last round raised the share of
    # open images it ranked right at 92 % from 80 to 93 %.
    last_model_epochs_factor: float = 1.0
    aggregator: Aggregator = "ambiguity"
    score_floor: float = 0.05
    keep_threshold: float = 0.5
    quality_gate_map: float = 0.0
    quality_gate_metric: str = "validation:mAP"
    # Stop rules.
    max_iterations: int = 10
    # The last iteration sends every image still open to humans instead of one batch, so the
    # run ends with every image labeled (the human label budget still caps it).
    finish_with_humans: bool = False
    human_label_budget: int | None = None
    cost_cap_usd: float | None = None
    patience: int = 2
    # Training.
    hyperparameters: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HYPERPARAMETERS))
    initial_model_uri: str | None = None
    # Costs for reports and the cost cap.
    price_per_human_label_usd: float = 0.26
    price_per_auto_label_usd: float = 0.08

    def __post_init__(self) -> None:
        # Whole floats (3.0, as some JSON writers send 3) become ints before anything reads them.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            rule = _RULES.get(f.name)
            if (
                isinstance(rule, _Number)
                and rule.kind is int
                and isinstance(value, float)
                and value.is_integer()
            ):
                object.__setattr__(self, f.name, int(value))
        problems = _problems(self)
        if problems:
            raise ConfigError(problems)

    @property
    def resolved_target_value(self) -> float:
        """The accuracy target: ``target_value``, or the target metric's default when unset."""
        return self.calibration.resolved_target

    @property
    def calibration(self) -> CalibrationConfig:
        """The calibration settings filter-low-confidence uses (built and checked at init)."""
        return CalibrationConfig(
            metric=self.target_metric,
            target=self.target_value,
            confidence_level=self.confidence_level,
            min_validation=self.min_validation,
            min_accepted=self.min_accepted,
        )

    @property
    def confidence(self) -> ConfidenceConfig:
        """The band and aggregator settings post-processing uses (built and checked at init)."""
        return ConfidenceConfig(
            aggregator=self.aggregator,
            score_floor=self.score_floor,
            keep_threshold=self.keep_threshold,
        )

    @property
    def last_training_iteration(self) -> int:
        """The iteration that trains the last model, unless a stop rule ends the loop sooner.

        With ``finish_with_humans`` the last iteration trains nothing: it sends every open
        image to humans, so the one before it trains the last model.
        """
        return self.max_iterations - (2 if self.finish_with_humans else 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the label config becomes the list of class names)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["labels"] = list(self.labels.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> LoopConfig:
        """Build from JSON data; unknown keys and bad values are all reported at once.

        Raises:
            ConfigError: listing every unknown key and every invalid value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        problems = [f"{source}: unknown setting {k!r}" for k in sorted(set(data) - known)]
        values = {k: v for k, v in data.items() if k in known}
        if "labels" not in values:
            problems.append(f"{source}: 'labels' (the class names) is required")
        else:
            try:
                values["labels"] = LabelConfig.from_value(
                    values["labels"], source=f"{source}.labels"
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
        if isinstance(values.get("hyperparameters"), dict):
            values["hyperparameters"] = {
                **DEFAULT_HYPERPARAMETERS,
                **_hyperparameter_strings(values["hyperparameters"]),
            }
        if problems:
            raise ConfigError(problems)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError([f"{source}: {exc}"]) from exc

    def with_overrides(self, overrides: dict[str, Any], *, source: str = "overrides") -> LoopConfig:
        """A copy with run-time overrides (e.g. from the execution input) applied.

        ``hyperparameters`` merge over this config's own (the stack's), name by name, so a run
        that sets ``learning_rate`` keeps the stack's ``epochs``.
        """
        merged = {**self.to_dict(), **overrides}
        if isinstance(overrides.get("hyperparameters"), dict):
            merged["hyperparameters"] = {
                **self.hyperparameters,
                **_hyperparameter_strings(overrides["hyperparameters"]),
            }
        return LoopConfig.from_dict(merged, source=source)


def _hyperparameter_strings(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers as the strings SageMaker takes (``{"epochs": 5}`` from hand-written JSON)."""
    return {
        name: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for name, v in values.items()
    }


@dataclass(frozen=True, slots=True)
class _Number:
    """A numeric setting: its type, its range (each end closed unless ``open_*``), null or not."""

    kind: type[int] | type[float]
    low: float
    high: float
    open_low: bool = False
    open_high: bool = False
    optional: bool = False

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for setting ``name``, or None."""
        if value is None and self.optional:
            return None
        null = " or null" if self.optional else ""
        span = (
            f"{'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
            f"{')' if self.open_high else ']'}"
        )
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{name} must be a whole number in {span}{null}, got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number in {span}{null}, got {value!r}"
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        if not (above and below):  # NaN fails both
            return f"{name} must be in {span}{null}, got {value!r}"
        return None


_MAX = 1e9
_JOB_PREFIX = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,18}[A-Za-z0-9])?")
# CreateLabelingJob.LabelAttributeName; a key of the ledger line, beside Ground Truth's own
# "source-ref" and boxloop's provenance and id keys.
_LABEL_ATTRIBUTE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
_RESERVED_KEYS = frozenset({"source", SOURCE_REF, PROVENANCE_KEY, ID_KEY})
# HumanTaskConfig.TaskTitle's pattern (botocore's SageMaker model): no control characters and
# nothing outside the Basic Multilingual Plane.
_TASK_TITLE = re.compile("[\t\n\r -\ud7ff\ue000-\ufffd]*")
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")  # what TaskDescription's ".+" does not match


def _utf16_length(text: str) -> int:
    """Length as SageMaker counts it (Java chars): a character beyond U+FFFF counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _one_of(options: tuple[str, ...]) -> Callable[[str, Any], str | None]:
    def check(name: str, value: Any) -> str | None:
        if value not in options:
            return f"{name} must be one of {options}, got {value!r}"
        return None

    return check


def _is_bool(name: str, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"


def _is_labels(name: str, value: Any) -> str | None:
    # LabelConfig checks its names (count, length, uniqueness) when it is built.
    if isinstance(value, LabelConfig):
        return None
    return f"{name} must be a LabelConfig (from_dict takes a list of names), got {value!r}"


def _is_label_attribute(name: str, value: Any) -> str | None:
    if (
        isinstance(value, str)
        and _LABEL_ATTRIBUTE.fullmatch(value)
        and not value.endswith(("-metadata", "-ref"))
        and value not in _RESERVED_KEYS
    ):
        return None
    return (
        f"{name} must be 1-127 ASCII letters, digits or hyphens, start and end with a letter or "
        f"digit, not end with -metadata or -ref and not be one of {sorted(_RESERVED_KEYS)} "
        f"(Ground Truth's LabelAttributeName), got {value!r}"
    )


def _is_job_prefix(name: str, value: Any) -> str | None:
    if isinstance(value, str) and _JOB_PREFIX.fullmatch(value):
        return None
    return (
        f"{name} must be 1-20 ASCII letters, digits or hyphens, starting and ending with a "
        f"letter or digit (it starts every SageMaker job name), got {value!r}"
    )


def _is_task_title(name: str, value: Any) -> str | None:
    if (
        isinstance(value, str)
        and value.strip()
        and len(value) <= 128
        and _TASK_TITLE.fullmatch(value)
    ):
        return None
    return (
        f"{name} must be 1-128 characters, not blank, without control characters or emoji "
        f"(SageMaker's HumanTaskConfig.TaskTitle), got {_shown(value)}"
    )


def _is_task_description(name: str, value: Any) -> str | None:
    if (
        isinstance(value, str)
        and value.strip()
        and _utf16_length(value) <= 255
        and not _LINE_BREAKS & set(value)
    ):
        return None
    return (
        f"{name} must be 1-255 characters on one line, not blank "
        f"(SageMaker's HumanTaskConfig.TaskDescription), got {_shown(value)}"
    )


def _is_metric_name(name: str, value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 255 and "\n" not in value:
        return None
    return f"{name} must be a training metric name such as 'validation:mAP', got {value!r}"


def _is_model_uri(name: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.startswith("s3://") and len(value) > 5):
        return None
    return f"{name} must be an s3:// URI of a model.tar.gz or null, got {value!r}"


def _are_hyperparameters(name: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{name} must be an object of names to string values, got {value!r}"
    derived = DERIVED_HYPERPARAMETERS & set(value)
    if derived:
        return (
            f"{name} {sorted(derived)} are derived from the data each iteration; remove them "
            "from the overrides"
        )
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return f"{name} values must be strings, as SageMaker requires"
    if len(value) > 100 or any(len(k) > 256 or len(v) > 2500 for k, v in value.items()):
        return f"{name} must hold at most 100 names of <= 256 characters, values <= 2500"
    epochs = value.get("epochs")
    if epochs is not None and not (epochs.isascii() and epochs.isdigit() and int(epochs) >= 1):
        # prepare-training scales it for the last model (last_model_epochs_factor)
        return f"{name}.epochs must be a whole number >= 1, got {epochs!r}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(value)} characters)"


_Check = Callable[[str, Any], str | None]
_RULES: dict[str, _Number | _Check] = {
    # One rule per field, in field order; tests/core/test_config.py keeps the two in step.
    "labels": _is_labels,
    "label_attribute": _is_label_attribute,
    "job_prefix": _is_job_prefix,
    "seed": _Number(int, 0, 2**63 - 1),
    "seed_size": _Number(int, 1, _MAX),
    # prepare-training needs a validation channel, and calibration validation images.
    "validation_fraction": _Number(float, 0.0, 0.9, open_low=True),
    "test_fraction": _Number(float, 0.0, 0.5),
    "batch_size": _Number(int, 1, 1e6),
    "audit_share": _Number(float, 0.0, 1.0),
    "selection_strategy": _one_of(get_args(SelectionStrategy)),
    "max_label_attempts": _Number(int, 1, 100),
    # HumanTaskConfig's limits: workers 1-9, a task 30 s - 8 h, available 60 s - 10 days,
    # 1-5000 tasks at once.
    "workers_per_object": _Number(int, 1, 9),
    "task_title": _is_task_title,
    "preannotate": _one_of(get_args(Preannotate)),
    "task_description": _is_task_description,
    "task_time_limit_s": _Number(int, 30, 28_800),
    "task_availability_s": _Number(int, 60, 864_000),
    "max_concurrent_tasks": _Number(int, 1, 5000),
    "max_objects_per_labeling_job": _Number(int, 1, 100_000),
    "target_metric": _one_of(get_args(TargetMetric)),
    # A target of 0 certifies every threshold: it is no target.
    "target_value": _Number(float, 0.0, 1.0, open_low=True, optional=True),
    # A level below 0.5 bounds from above; 1 has an infinite quantile.
    "confidence_level": _Number(float, 0.5, 1.0, open_high=True, optional=True),
    "min_validation": _Number(int, 1, _MAX),
    "min_accepted": _Number(int, 1, _MAX),
    "fixed_threshold": _Number(float, 0.0, 1.0, optional=True),
    "defer_auto_labels": _is_bool,
    "last_model_epochs_factor": _Number(float, 1.0, 10.0),
    "aggregator": _one_of(get_args(Aggregator)),
    "score_floor": _Number(float, 0.0, 1.0),
    # keep_threshold 0 would keep every box, even those scored 0.
    "keep_threshold": _Number(float, 0.0, 1.0, open_low=True),
    "quality_gate_map": _Number(float, 0.0, 1.0),
    "quality_gate_metric": _is_metric_name,
    "max_iterations": _Number(int, 1, 1000),
    "finish_with_humans": _is_bool,
    "human_label_budget": _Number(int, 0, _MAX, optional=True),
    "cost_cap_usd": _Number(float, 0.0, _MAX, optional=True),
    "patience": _Number(int, 1, 1000),
    "hyperparameters": _are_hyperparameters,
    "initial_model_uri": _is_model_uri,
    "price_per_human_label_usd": _Number(float, 0.0, 1e6),
    "price_per_auto_label_usd": _Number(float, 0.0, 1e6),
}


def _problems(config: LoopConfig) -> list[str]:
    """Every problem of ``config``: each field's own, then those between fields."""
    problems = []
    bad: set[str] = set()
    for f in dataclasses.fields(config):
        rule = _RULES[f.name]
        value = getattr(config, f.name)
        problem = rule.problem(f.name, value) if isinstance(rule, _Number) else rule(f.name, value)
        if problem:
            problems.append(problem)
            bad.add(f.name)
    if not bad & {"validation_fraction", "test_fraction"} and (
        config.validation_fraction + config.test_fraction >= 1
    ):
        problems.append("validation_fraction + test_fraction must leave images for the pool")
    if not bad & {"keep_threshold", "score_floor"} and config.keep_threshold < config.score_floor:
        problems.append(
            f"keep_threshold must be >= score_floor ({config.score_floor}), "
            f"got {config.keep_threshold}"
        )
    if not problems:
        problems.extend(_built_problems(config))
    return problems


# The names the calibration and confidence settings give LoopConfig's fields.
_BUILT_NAMES = {"metric": "target_metric", "target": "target_value", "score_floor": "score_floor"}


def _built_problems(config: LoopConfig) -> list[str]:
    """Build the settings later steps build, so that what they refuse is refused here.

    The rules above should already refuse it all; this catches a rule that drifted from the
    step's own checks, still naming LoopConfig's field.
    """
    problems = []
    for build in (lambda: config.calibration, lambda: config.confidence):
        try:
            build()
        except ConfigError as exc:
            for problem in exc.problems:
                name, _, rest = problem.partition(" ")
                problems.append(f"{_BUILT_NAMES.get(name, name)} {rest}")
    return problems
