"""The loop's settings: one frozen value, each field declared once with ``setting`` (see settings).

The defaults are the measured recipe (``docs/benchmarks.md``): the demo, ``boxloop local run``
and an AWS stack all start from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from boxloop.core.calibration import CalibrationConfig
from boxloop.core.confidence import AggregatorName as Aggregator
from boxloop.core.confidence import ConfidenceConfig
from boxloop.core.errors import ConfigError
from boxloop.core.labels import LabelConfig
from boxloop.core.setting_rules import (
    DERIVED_HYPERPARAMETERS,
    JOB_PREFIX,
    LABEL_ATTRIBUTE,
    MAX_COUNT,
    METRIC_NAME,
    TASK_DESCRIPTION,
    TASK_TITLE,
    Flag,
    Hyperparameters,
    Labels,
    ModelUri,
    Number,
    OneOf,
    hyperparameter_strings,
)
from boxloop.core.settings import NO_DEFAULT, Setting, declared_settings, setting

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
__all__ = ["DEFAULT_HYPERPARAMETERS", "DERIVED_HYPERPARAMETERS", "SETTINGS", "LoopConfig"]

_FRACTION = Number(float, 0.0, 1.0)
_PRICE = Number(float, 0.0, 1e6)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopConfig:
    """Everything a run of the loop needs to decide, besides the data itself.

    Each field is a setting declared once (``boxloop.core.settings.setting``): its type and
    range, default and one line on when to change it. Bad values are all reported at once
    when the value is built.
    """

    # fmt: off
    labels: LabelConfig = setting(
        NO_DEFAULT, Labels(), "class names, class id = position (context: a list or a,b,c)",
        context_default=["car", "person", "bicycle"],
    )
    label_attribute: str = setting(
        "boxes", LABEL_ATTRIBUTE,
        "the manifest's label key; set it to the key of labels you already have",
        context_key="labelAttributeName",
    )
    job_prefix: str = setting(
        "boxloop", JOB_PREFIX,
        "starts every SageMaker job name (IAM allows only those); change for a second stack",
    )
    seed: int = setting(
        0, Number(int, 0, 2**63 - 1),
        "random draws (roles, seed, audits); change to repeat a run on other draws",
    )
    # Human labeling.
    seed_size: int = setting(
        60, Number(int, 1, MAX_COUNT),
        "first human batch to train on; raise when the first model ranks images poorly",
    )
    validation_fraction: float = setting(
        0.12, Number(float, 0.0, 0.9, open_low=True),
        "share of images humans label to certify auto-labels (~120 is what the demo needs); "
        "lower it for large datasets",
    )
    test_fraction: float = setting(
        0.0, Number(float, 0.0, 0.5),
        "share held out of the loop, never labeled; raise to measure a run on your own labels",
    )
    batch_size: int = setting(
        53, Number(int, 1, 1e6),
        "images sent to humans per round; raise for large pools (each round trains once)",
    )
    # Share of each batch given to a random audit of would-be auto-labels (open pool images the
    # validation images alone would accept but the applied threshold held back), and share of a
    # round's applied auto-labels sent to humans the next round: live evidence of the accuracy
    # the run delivers (boxloop.steps.audit). Audited images keep their human labels.
    audit_share: float = setting(
        0.05, _FRACTION,
        "share of each batch, and of the auto-labels applied, audited by humans; raise for "
        "more live evidence",
    )
    selection_strategy: SelectionStrategy = setting(
        "least_confidence", OneOf(get_args(SelectionStrategy)),
        "how a batch is picked; random only as a baseline",
    )
    max_label_attempts: int = setting(
        2, Number(int, 1, 100), "times an image that failed or expired goes to humans again",
    )
    # HumanTaskConfig's limits: workers 1-9, a task 30 s - 8 h, available 60 s - 10 days,
    # 1-5000 tasks at once.
    workers_per_object: int = setting(
        3, Number(int, 1, 9),
        "workers per image, consolidated; 1 costs a third, but one worker's labels (~93 % exact) "
        "cap what calibration can certify",
    )
    # Validation, audit and seed images never get suggestions: their labels measure the model,
    # and anchoring them on its guesses would bias calibration.
    preannotate: Preannotate = setting(
        "pool", OneOf(get_args(Preannotate)),
        "pool: workers see the model's kept boxes on pool images as suggestions; none: never",
    )
    task_title: str = setting(
        "Draw a box around each object", TASK_TITLE, "the task's title, as workers read it",
    )
    task_description: str = setting(
        "Draw a tight box around every visible object of the listed classes.",
        TASK_DESCRIPTION, "the task's instructions, one line",
    )
    task_time_limit_s: int = setting(
        300, Number(int, 30, 28_800), "seconds a worker has per image; raise for crowded images",
        context_key="taskTimeLimitSeconds",
    )
    task_availability_s: int = setting(
        864_000, Number(int, 60, 864_000),
        "seconds an image waits for a worker before it expires",
        context_key="taskAvailabilitySeconds",
    )
    max_concurrent_tasks: int = setting(
        1000, Number(int, 1, 5000), "tasks open at once", context_key="maxConcurrentTaskCount",
    )
    # Ground Truth takes at most 100,000 objects per labeling job; a larger batch (iteration 0
    # at a million images: every unlabeled validation image plus the seed) is sent in jobs of
    # at most this many, the rest carried into the next ones.
    max_objects_per_labeling_job: int = setting(
        100_000, Number(int, 1, 100_000),
        "images per labeling job (Ground Truth's limit); lower to send a batch in parts",
    )
    # Auto-labeling decision.
    target_metric: TargetMetric = setting(
        "exact_match", OneOf(get_args(TargetMetric)),
        "what an auto-label must get right: exact_match (every box) or mean_iou (Ground "
        "Truth's, met by empty images alone)",
    )
    # None: the target metric's default (boxloop.core.calibration.DEFAULT_TARGETS).
    target_value: float | None = setting(
        None, Number(float, 0.0, 1.0, open_low=True, optional=True),
        "accuracy auto-labels must reach; null = the metric's default (exact 0.9, IoU 0.6)",
    )
    # A level below 0.5 bounds from above; 1 has an infinite quantile.
    confidence_level: float | None = setting(
        0.8, Number(float, 0.5, 1.0, open_high=True, optional=True),
        "probability that the accuracy bound holds; raise for a safer promise, fewer auto-labels",
    )
    min_validation: int = setting(
        40, Number(int, 1, MAX_COUNT),
        "validation images needed before anything is auto-labeled",
    )
    min_accepted: int = setting(
        15, Number(int, 1, MAX_COUNT),
        "validation images a threshold must accept before it is trusted",
    )
    # A fixed image-confidence cut instead of calibration, as the AWS samples use (0.4/0.5).
    fixed_threshold: float | None = setting(
        None, Number(float, 0.0, 1.0, optional=True),
        "a fixed confidence cut instead of calibration: for benchmarks only (no guarantee)",
    )
    # Auto-label only with the last model the loop trains (or when it stops sooner): images an
    # early, weaker model labels leave the pool, and later thresholds then meet harder
    # survivors than validation holds (docs/benchmarks.md).
    defer_auto_labels: bool = setting(
        True, Flag(),
        "auto-label only with the last model; false labels earlier, below the target measured",
    )
    # Train the last model (see last_training_iteration) this many times the configured epochs.
    last_model_epochs_factor: float = setting(
        2.5, Number(float, 1.0, 10.0),
        "the last model's training, times the epochs; lower to save training time",
    )
    aggregator: Aggregator = setting(
        "margin", OneOf(get_args(Aggregator)),
        "how box scores become an image's confidence; change only with a benchmark",
    )
    score_floor: float = setting(
        0.05, _FRACTION, "box scores below this are noise to an image's confidence",
    )
    # keep_threshold 0 would keep every box, even those scored 0.
    keep_threshold: float = setting(
        0.6, Number(float, 0.0, 1.0, open_low=True),
        "box score an auto-label keeps; tune with the detector (>= score_floor)",
    )
    quality_gate_map: float = setting(
        0.0, _FRACTION, "validation mAP a model needs before it may auto-label",
    )
    quality_gate_metric: str = setting(
        "validation:mAP", METRIC_NAME, "the training metric the quality gate reads",
    )
    # Stop rules.
    max_iterations: int = setting(
        5, Number(int, 1, 1000), "rounds of the loop; raise for large pools",
    )
    # The last iteration sends every image still open to humans instead of one batch, so the
    # run ends with every image labeled (the human label budget still caps it).
    finish_with_humans: bool = setting(
        True, Flag(),
        "the last round sends every open image to humans; turn off (or set "
        "human_label_budget) on large datasets",
    )
    human_label_budget: int | None = setting(
        None, Number(int, 0, MAX_COUNT, optional=True),
        "stop after this many human labels; null = no limit",
    )
    cost_cap_usd: float | None = setting(
        None, Number(float, 0.0, MAX_COUNT, optional=True),
        "stop when the labels' cost reaches this; null = no limit",
    )
    patience: int = setting(2, Number(int, 1, 1000), "rounds without new labels before stopping")
    # Training.
    hyperparameters: dict[str, str] = setting(
        DEFAULT_HYPERPARAMETERS, Hyperparameters(),
        "Object Detection hyperparameters, merged over boxloop's (config.py) by name",
        context_default={},
    )
    initial_model_uri: str | None = setting(
        None, ModelUri(), "a model.tar.gz the first round warm-starts from",
        context_default="",
    )
    # Costs for reports and the cost cap.
    price_per_human_label_usd: float = setting(
        0.26, _PRICE, "what one human label costs, for reports and cost_cap_usd",
    )
    price_per_auto_label_usd: float = setting(
        0.08, _PRICE, "what one auto-label costs, for reports and cost_cap_usd",
    )
    # fmt: on

    def __post_init__(self) -> None:
        # Whole floats (3.0, as some JSON writers send 3) become ints before anything reads them.
        for s in SETTINGS:
            rule = s.rule
            value = getattr(self, s.name)
            if isinstance(rule, Number) and rule.kind is int and isinstance(value, float):
                object.__setattr__(self, s.name, rule.parse(value))
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
        data = {s.name: getattr(self, s.name) for s in SETTINGS}
        data["labels"] = list(self.labels.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> LoopConfig:
        """Build from JSON data; unknown keys and bad values are all reported at once.

        Raises:
            ConfigError: listing every unknown key and every invalid value.
        """
        known = {s.name for s in SETTINGS}
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
                **hyperparameter_strings(values["hyperparameters"]),
            }
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def with_overrides(self, overrides: dict[str, Any], *, source: str = "overrides") -> LoopConfig:
        """A copy with run-time overrides (e.g. from the execution input) applied.

        ``hyperparameters`` merge over this config's own (the stack's), name by name, so a run
        that sets ``learning_rate`` keeps the stack's ``epochs``.
        """
        merged = {**self.to_dict(), **overrides}
        if isinstance(overrides.get("hyperparameters"), dict):
            merged["hyperparameters"] = {
                **self.hyperparameters,
                **hyperparameter_strings(overrides["hyperparameters"]),
            }
        return LoopConfig.from_dict(merged, source=source)


SETTINGS: tuple[Setting, ...] = declared_settings(LoopConfig)
"""Every run setting's declaration, in field order."""
_DEFAULTS = {s.name: s.default for s in SETTINGS if not s.is_required}


def default_of(name: str) -> Any:
    """A run setting's declared default (``KeyError`` for an unknown or required one)."""
    return _DEFAULTS[name]


def _problems(config: LoopConfig) -> list[str]:
    """Every problem of ``config``: each setting's own, then those between settings."""
    problems = []
    bad: set[str] = set()
    for s in SETTINGS:
        problem = s.rule.problem(s.name, getattr(config, s.name))
        if problem:
            problems.append(problem)
            bad.add(s.name)
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
