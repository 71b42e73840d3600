"""Labeling and compute cost of a run, from counts and a configurable price table, in US dollars."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

CENT = Decimal("0.01")
MICRO_USD = Decimal("0.000001")
"""Compute amounts are kept to the micro-dollar: a second of ml.c5.xlarge is $0.0000567."""
SECONDS_PER_HOUR = Decimal(3600)

DEFAULT_INSTANCE_HOURLY_USD: Mapping[str, Decimal] = MappingProxyType({
    # Training: Ground Truth's own auto-labeling trains bounding boxes on ml.p3.2xlarge; the
    # g4dn is the cheaper GPU most people pick for the built-in Object Detection algorithm.
    "ml.p3.2xlarge": Decimal("3.825"),
    "ml.g4dn.xlarge": Decimal("0.736"),
    # Batch transform: Ground Truth infers boxes on ml.c5 instances; the AWS active-learning
    # sample uses ml.c5.xlarge.
    "ml.c5.xlarge": Decimal("0.204"),
    "ml.c5.4xlarge": Decimal("0.816"),
    # Processing (post-processing the transform output): the sample uses ml.m4.xlarge.
    "ml.m4.xlarge": Decimal("0.24"),
    "ml.m5.xlarge": Decimal("0.23"),
    "ml.m5.large": Decimal("0.115"),
})
"""SageMaker on-demand USD per instance-hour: approximate us-east-1 list prices, recalled from the
SageMaker pricing page (aws.amazon.com/sagemaker/pricing) and not checked against it when this
table was written. One table serves training, batch transform and processing, whose rates for a
given type are the same or close. Prices differ by region and change over time: these defaults
are for simulated reports; override ``PriceTable.instance_hourly_usd`` for real budgeting."""


def _to_usd(value: object) -> Decimal | None:
    """``value`` as a finite, non-negative Decimal, or ``None`` when it cannot be one.

    Floats go through ``str`` so that ``0.036`` becomes ``Decimal("0.036")``, not the binary
    expansion ``0.0359999...``.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        return None
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTable:
    """What each unit of work costs, in US dollars.

    Ground Truth bills per *dataset object*, which for bounding boxes is one image, however many
    boxes it holds; a public (Mechanical Turk) workforce is paid per task, once per worker. The
    defaults reproduce the AWS Ground Truth object-detection demo notebook: a human label costs
    ``$0.08 + 5 x $0.036 = $0.26`` and an auto-label ``$0.08``. Amounts may be given as Decimal,
    int, float or str and are stored as Decimal.

    Attributes:
        human_fee_usd: Ground Truth's fee per human-labeled object.
        auto_fee_usd: Ground Truth's fee per auto-labeled object (billed the same as a human
            one on the pricing page; kept separate so a cheaper self-run loop can set 0).
        workforce_task_usd: Price paid per task per worker (public workforce; 0 for a private
            work team, whose cost is salaries outside AWS).
        workers_per_object: Workers who label each image (Ground Truth's
            ``NumberOfHumanWorkersPerDataObject``).
        instance_hourly_usd: USD per instance-hour by SageMaker instance type; the default
            is `DEFAULT_INSTANCE_HOURLY_USD`.

    Raises:
        ConfigError: Listing every negative, non-finite or non-numeric amount at once.
    """

    human_fee_usd: Decimal = Decimal("0.08")
    auto_fee_usd: Decimal = Decimal("0.08")
    workforce_task_usd: Decimal = Decimal("0.036")
    workers_per_object: int = 5
    instance_hourly_usd: Mapping[str, Decimal] = field(
        default_factory=lambda: DEFAULT_INSTANCE_HOURLY_USD, hash=False
    )

    def __post_init__(self) -> None:
        problems = []
        for name in ("human_fee_usd", "auto_fee_usd", "workforce_task_usd"):
            amount = _to_usd(getattr(self, name))
            if amount is None:
                problems.append(f"{name} must be a finite amount >= 0, got {getattr(self, name)!r}")
            else:
                object.__setattr__(self, name, amount)
        workers = self.workers_per_object
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            problems.append(f"workers_per_object must be an int >= 1, got {workers!r}")
        hourly: dict[str, Decimal] = {}
        for instance_type, price in dict(self.instance_hourly_usd).items():
            amount = _to_usd(price)
            if not isinstance(instance_type, str) or not instance_type:
                problems.append(f"instance_hourly_usd keys must be instance types, got "
                                f"{instance_type!r}")
            elif amount is None:
                problems.append(f"instance_hourly_usd[{instance_type!r}] must be a finite amount "
                                f">= 0, got {price!r}")
            else:
                hourly[instance_type] = amount
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "instance_hourly_usd", MappingProxyType(hourly))

    @classmethod
    def from_label_prices(
        cls,
        *,
        human_label_usd: Decimal | float | str,
        auto_label_usd: Decimal | float | str,
        instance_hourly_usd: Mapping[str, Decimal | float | str] | None = None,
    ) -> PriceTable:
        """A table from all-in prices per label, for configs that keep one figure per kind.

        The human price goes into ``human_fee_usd`` with no separate workforce line (one
        worker at $0), so ``human_label_usd`` equals the figure given.
        """
        return cls(
            human_fee_usd=human_label_usd,  # type: ignore[arg-type]  # coerced in __post_init__
            auto_fee_usd=auto_label_usd,  # type: ignore[arg-type]
            workforce_task_usd=Decimal(0),
            workers_per_object=1,
            instance_hourly_usd=(  # type: ignore[arg-type]
                DEFAULT_INSTANCE_HOURLY_USD if instance_hourly_usd is None else instance_hourly_usd
            ),
        )

    @property
    def human_label_usd(self) -> Decimal:
        """Cost of one human-labeled image: the fee plus every worker's task price."""
        return self.human_fee_usd + self.workforce_task_usd * self.workers_per_object

    @property
    def auto_label_usd(self) -> Decimal:
        """Cost of one auto-labeled image."""
        return self.auto_fee_usd

    def hourly_usd(self, instance_type: str) -> Decimal:
        """USD per hour of ``instance_type``.

        Raises:
            ConfigError: When the table has no price for it (the message names the fix).
        """
        try:
            return self.instance_hourly_usd[instance_type]
        except KeyError:
            known = ", ".join(sorted(self.instance_hourly_usd)) or "none"
            raise ConfigError([
                f"no hourly price for instance type {instance_type!r} (known: {known}); "
                f"add it to PriceTable.instance_hourly_usd"
            ]) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class IterationCost:
    """The cost of one loop iteration (or, summed with ``+``, of a whole run), in US dollars.

    Amounts are Decimals, label amounts exact and compute amounts to the micro-dollar: a few
    seconds of compute cost fractions of a cent, and rounding each one to the cent would lose
    them. Round with `round_cents` only when presenting.

    Attributes:
        human_labels: Images labeled by humans.
        auto_labels: Images labeled by the model.
        human_fee_usd: Ground Truth fee on the human-labeled images.
        workforce_usd: Workforce pay for the human-labeled images.
        auto_fee_usd: Ground Truth fee on the auto-labeled images.
        compute_usd_by_instance: ``(instance_type, usd)`` pairs, sorted by instance type.
    """

    human_labels: int = 0
    auto_labels: int = 0
    human_fee_usd: Decimal = Decimal(0)
    workforce_usd: Decimal = Decimal(0)
    auto_fee_usd: Decimal = Decimal(0)
    compute_usd_by_instance: tuple[tuple[str, Decimal], ...] = ()

    @property
    def labeling_usd(self) -> Decimal:
        """Everything paid for labels: fees and workforce."""
        return self.human_fee_usd + self.workforce_usd + self.auto_fee_usd

    @property
    def compute_usd(self) -> Decimal:
        """Everything paid for instances (training, batch transform, processing)."""
        return sum((usd for _, usd in self.compute_usd_by_instance), Decimal(0))

    @property
    def total_usd(self) -> Decimal:
        """Labeling plus compute."""
        return self.labeling_usd + self.compute_usd

    def __add__(self, other: IterationCost) -> IterationCost:
        if not isinstance(other, IterationCost):
            return NotImplemented
        compute: dict[str, Decimal] = dict(self.compute_usd_by_instance)
        for instance_type, usd in other.compute_usd_by_instance:
            compute[instance_type] = compute.get(instance_type, Decimal(0)) + usd
        return IterationCost(
            human_labels=self.human_labels + other.human_labels,
            auto_labels=self.auto_labels + other.auto_labels,
            human_fee_usd=self.human_fee_usd + other.human_fee_usd,
            workforce_usd=self.workforce_usd + other.workforce_usd,
            auto_fee_usd=self.auto_fee_usd + other.auto_fee_usd,
            compute_usd_by_instance=tuple(sorted(compute.items())),
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready breakdown for the iteration report, every amount rounded to the cent."""
        return {
            "human_labels": self.human_labels,
            "auto_labels": self.auto_labels,
            "human_fee_usd": float(round_cents(self.human_fee_usd)),
            "workforce_usd": float(round_cents(self.workforce_usd)),
            "auto_fee_usd": float(round_cents(self.auto_fee_usd)),
            "compute_usd_by_instance": {
                instance_type: float(round_cents(usd))
                for instance_type, usd in self.compute_usd_by_instance
            },
            "labeling_usd": float(round_cents(self.labeling_usd)),
            "compute_usd": float(round_cents(self.compute_usd)),
            "total_usd": float(round_cents(self.total_usd)),
        }


def round_cents(amount: Decimal) -> Decimal:
    """``amount`` rounded to the cent, halves away from zero (as invoices round)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def iteration_cost(
    *,
    human_labels: int,
    auto_labels: int,
    instance_seconds: Mapping[str, float] | None = None,
    prices: PriceTable | None = None,
) -> IterationCost:
    """The cost of one iteration from its counts.

    Args:
        human_labels: Images sent to and labeled by humans this iteration.
        auto_labels: Images auto-labeled this iteration.
        instance_seconds: Billed instance-seconds by instance type (seconds x instance count;
            SageMaker bills by the second).
        prices: The price table; the defaults when ``None``.

    Returns:
        The breakdown: label amounts exact, compute amounts to the micro-dollar.

    Raises:
        ValueError: When a count is negative or not an int, or seconds are negative or not
            finite (a bug in the caller, not in user input).
        ConfigError: When an instance type has no price in ``prices``.
    """
    prices = prices or PriceTable()
    for name, count in (("human_labels", human_labels), ("auto_labels", auto_labels)):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{name} must be an int >= 0, got {count!r}")
    compute: dict[str, Decimal] = {}
    for instance_type, seconds in (instance_seconds or {}).items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            math.isfinite(seconds) and seconds >= 0
        ):
            raise ValueError(f"instance_seconds[{instance_type!r}] must be finite seconds >= 0, "
                             f"got {seconds!r}")
        usd = Decimal(str(seconds)) * prices.hourly_usd(instance_type) / SECONDS_PER_HOUR
        compute[instance_type] = usd.quantize(MICRO_USD, rounding=ROUND_HALF_UP)
    return IterationCost(
        human_labels=human_labels,
        auto_labels=auto_labels,
        human_fee_usd=prices.human_fee_usd * human_labels,
        workforce_usd=prices.workforce_task_usd * prices.workers_per_object * human_labels,
        auto_fee_usd=prices.auto_fee_usd * auto_labels,
        compute_usd_by_instance=tuple(sorted(compute.items())),
    )


def run_cost(iterations: Iterable[IterationCost]) -> IterationCost:
    """The cost of a whole run: every iteration's counts and amounts summed."""
    return sum(iterations, IterationCost())


def all_human_cost(n_images: int, prices: PriceTable | None = None) -> IterationCost:
    """What labeling ``n_images`` entirely by humans would cost (no model, no compute).

    This is the baseline for "simulated cost vs all-human": 1,000 images at the defaults cost
    $260, the figure the AWS demo notebook compares its auto-labeling run against.
    """
    return iteration_cost(human_labels=n_images, auto_labels=0, prices=prices)


def savings_fraction(actual: IterationCost, baseline: IterationCost) -> float | None:
    """``1 - actual / baseline`` on total cost; negative when the run cost more than the baseline.

    Returns ``None`` for a zero baseline, where no fraction means anything.
    """
    if baseline.total_usd == 0:
        return None
    return float(1 - actual.total_usd / baseline.total_usd)
