from __future__ import annotations

import json
import re
from contextlib import ExitStack as DoesNotRaise
from decimal import Decimal

import pytest

from boxloop.core.cost import (
    DEFAULT_INSTANCE_HOURLY_USD,
    IterationCost,
    PriceTable,
    all_human_cost,
    iteration_cost,
    round_cents,
    run_cost,
    savings_fraction,
)
from boxloop.core.errors import ConfigError

D = Decimal


def test_price_table_defaults_reproduce_demo_notebook() -> None:
    # AWS GT object-detection demo: human label $0.08 + 5 x $0.036 = $0.26, auto-label $0.08.
    prices = PriceTable()
    assert prices.human_label_usd == D("0.26")
    assert prices.auto_label_usd == D("0.08")
    assert prices.instance_hourly_usd == DEFAULT_INSTANCE_HOURLY_USD


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        # floats are read through str: 0.012 stays exactly 0.012
        ({"workforce_task_usd": 0.012}, DoesNotRaise()),
        # strings and ints are amounts too
        ({"human_fee_usd": "0.10", "auto_fee_usd": 0}, DoesNotRaise()),
        # a private work team costs nothing per task
        ({"workforce_task_usd": D(0), "workers_per_object": 1}, DoesNotRaise()),
        # a custom instance table (the local engine's "instance")
        ({"instance_hourly_usd": {"local": 0}}, DoesNotRaise()),
        # negative fee
        ({"human_fee_usd": -0.08}, pytest.raises(ConfigError, match="human_fee_usd")),
        # NaN price
        ({"auto_fee_usd": float("nan")}, pytest.raises(ConfigError, match="auto_fee_usd")),
        # text that is no number
        ({"workforce_task_usd": "cheap"}, pytest.raises(ConfigError, match="workforce_task_usd")),
        # a bool is not an amount
        ({"human_fee_usd": True}, pytest.raises(ConfigError, match="human_fee_usd")),
        # nobody labels the image
        ({"workers_per_object": 0}, pytest.raises(ConfigError, match="workers_per_object")),
        # fractional workers
        ({"workers_per_object": 2.5}, pytest.raises(ConfigError, match="workers_per_object")),
        # negative hourly price
        ({"instance_hourly_usd": {"ml.c5.xlarge": -1}},
         pytest.raises(ConfigError, match=r"ml\.c5\.xlarge")),
        # empty instance type name
        ({"instance_hourly_usd": {"": 1}}, pytest.raises(ConfigError, match="instance types")),
    ],
)
def test_price_table_validates(kwargs: dict, expectation: DoesNotRaise) -> None:
    with expectation:
        prices = PriceTable(**kwargs)
        assert isinstance(prices.human_fee_usd, Decimal)
        assert all(isinstance(v, Decimal) for v in prices.instance_hourly_usd.values())


def test_price_table_float_becomes_exact_decimal() -> None:
    assert PriceTable(workforce_task_usd=0.036).workforce_task_usd == D("0.036")


def test_price_table_lists_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        PriceTable(human_fee_usd=-1, auto_fee_usd="x", workers_per_object=0,
                   instance_hourly_usd={"ml.m5.xlarge": float("inf")})
    assert len(caught.value.problems) == 4


def test_price_table_copies_instance_table() -> None:
    table = {"ml.c5.xlarge": 0.204}
    prices = PriceTable(instance_hourly_usd=table)
    table["ml.c5.xlarge"] = 99
    assert prices.hourly_usd("ml.c5.xlarge") == D("0.204")
    with pytest.raises(TypeError):
        prices.instance_hourly_usd["ml.c5.xlarge"] = D(1)  # type: ignore[index]


def test_price_table_hourly_raises_when_instance_unknown() -> None:
    with pytest.raises(ConfigError, match=r"'ml\.x99\.huge'.*instance_hourly_usd"):
        PriceTable().hourly_usd("ml.x99.huge")


@pytest.mark.parametrize(
    ("human", "auto", "seconds", "labeling", "compute"),
    [
        # nothing happened
        (0, 0, {}, "0", "0"),
        # 10 human labels: 10 x 0.26
        (10, 0, {}, "2.60", "0"),
        # 20 auto labels: 20 x 0.08
        (0, 20, {}, "1.60", "0"),
        # one hour of ml.p3.2xlarge training
        (0, 0, {"ml.p3.2xlarge": 3600}, "0", "3.825"),
        # one second of ml.c5.xlarge: 0.204 / 3600 = 0.0000567 (kept to the micro-dollar)
        (0, 0, {"ml.c5.xlarge": 1}, "0", "0.000057"),
        # a whole iteration: train, transform, post-process
        (100, 400, {"ml.p3.2xlarge": 1800, "ml.c5.xlarge": 600, "ml.m5.xlarge": 360.0},
         "58.00", "1.9695"),
    ],
)
def test_iteration_cost_match_table(
    human: int, auto: int, seconds: dict, labeling: str, compute: str
) -> None:
    cost = iteration_cost(human_labels=human, auto_labels=auto, instance_seconds=seconds)
    assert cost.labeling_usd == D(labeling)
    assert cost.compute_usd == D(compute)
    assert cost.total_usd == D(labeling) + D(compute)
    assert (cost.human_labels, cost.auto_labels) == (human, auto)


def test_iteration_cost_breakdown() -> None:
    cost = iteration_cost(human_labels=10, auto_labels=5,
                          instance_seconds={"ml.m5.xlarge": 3600, "ml.c5.xlarge": 3600})
    assert cost.human_fee_usd == D("0.80")
    assert cost.workforce_usd == D("1.80")
    assert cost.auto_fee_usd == D("0.40")
    # sorted by instance type, whatever order the caller used
    assert cost.compute_usd_by_instance == (("ml.c5.xlarge", D("0.204")),
                                            ("ml.m5.xlarge", D("0.23")))


def test_iteration_cost_uses_given_prices() -> None:
    prices = PriceTable(human_fee_usd=0, workforce_task_usd=1, workers_per_object=3,
                        auto_fee_usd=0, instance_hourly_usd={"local": 0})
    cost = iteration_cost(human_labels=2, auto_labels=7, instance_seconds={"local": 60},
                          prices=prices)
    assert cost.total_usd == D(6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        # negative count
        ({"human_labels": -1, "auto_labels": 0}, ValueError, "human_labels"),
        # float count
        ({"human_labels": 0, "auto_labels": 1.5}, ValueError, "auto_labels"),
        # negative seconds
        ({"human_labels": 0, "auto_labels": 0, "instance_seconds": {"ml.c5.xlarge": -1}},
         ValueError, "ml.c5.xlarge"),
        # NaN seconds
        ({"human_labels": 0, "auto_labels": 0,
          "instance_seconds": {"ml.c5.xlarge": float("nan")}}, ValueError, "ml.c5.xlarge"),
        # an instance type without a price
        ({"human_labels": 0, "auto_labels": 0, "instance_seconds": {"ml.x99.huge": 1}},
         ConfigError, "ml.x99.huge"),
    ],
)
def test_iteration_cost_raises_when_input_bad(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=re.escape(match)):
        iteration_cost(**kwargs)


def test_run_cost_sums_iterations_and_merges_instances() -> None:
    first = iteration_cost(human_labels=10, auto_labels=0,
                           instance_seconds={"ml.p3.2xlarge": 3600})
    second = iteration_cost(human_labels=5, auto_labels=30,
                            instance_seconds={"ml.p3.2xlarge": 1800, "ml.c5.xlarge": 3600})
    total = run_cost([first, second])
    assert (total.human_labels, total.auto_labels) == (15, 30)
    assert total.labeling_usd == D("6.30")  # 15 x 0.26 + 30 x 0.08
    assert total.compute_usd_by_instance == (("ml.c5.xlarge", D("0.204")),
                                             ("ml.p3.2xlarge", D("5.7375")))
    assert total.total_usd == first.total_usd + second.total_usd
    assert first + second == total


def test_run_cost_of_no_iterations_is_zero() -> None:
    assert run_cost([]) == IterationCost()
    assert run_cost([]).total_usd == 0


def test_iteration_cost_add_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        IterationCost() + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    ("n_images", "total"),
    [
        (0, "0"),  # nothing to label
        (1, "0.26"),  # one image
        (100, "26"),  # the demo notebook's 100 images without auto-labeling: ~$26
        (1000, "260"),  # 1,000 images all by humans: the $260 baseline
    ],
)
def test_all_human_cost_match_table(n_images: int, total: str) -> None:
    baseline = all_human_cost(n_images)
    assert baseline.total_usd == D(total)
    assert baseline.human_labels == n_images
    assert baseline.compute_usd == 0


@pytest.mark.parametrize(
    ("actual", "baseline", "expected"),
    [
        # 300 human + 700 auto labels vs 1,000 human: (78 + 56) / 260
        (iteration_cost(human_labels=300, auto_labels=700), all_human_cost(1000), 1 - 134 / 260),
        # the same work costs the same: no savings
        (all_human_cost(10), all_human_cost(10), 0.0),
        # more expensive than the baseline: negative savings
        (iteration_cost(human_labels=10, auto_labels=0, instance_seconds={"ml.p3.2xlarge": 3600}),
         all_human_cost(10), 1 - (2.6 + 3.825) / 2.6),
        # a zero baseline: undefined
        (all_human_cost(0), all_human_cost(0), None),
    ],
)
def test_savings_fraction_match_table(
    actual: IterationCost, baseline: IterationCost, expected: float | None
) -> None:
    assert savings_fraction(actual, baseline) == (
        None if expected is None else pytest.approx(expected)
    )


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [
        ("0.005", "0.01"),  # half a cent rounds up (as invoices do), not to even
        ("0.125", "0.13"),  # ROUND_HALF_EVEN would give 0.12
        ("0.025", "0.03"),  # ROUND_HALF_EVEN would give 0.02
        ("0.0049999", "0.00"),  # below half a cent
        ("12.3456", "12.35"),  # ordinary amount
    ],
)
def test_round_cents_match_table(amount: str, rounded: str) -> None:
    assert round_cents(D(amount)) == D(rounded)
    assert str(round_cents(D(amount))) == rounded


def test_iteration_cost_to_dict_is_json_ready_in_cents() -> None:
    cost = iteration_cost(human_labels=3, auto_labels=1,
                          instance_seconds={"ml.c5.xlarge": 10, "ml.p3.2xlarge": 3600})
    report = json.loads(json.dumps(cost.to_dict()))
    assert report == {
        "human_labels": 3,
        "auto_labels": 1,
        "human_fee_usd": 0.24,
        "workforce_usd": 0.54,
        "auto_fee_usd": 0.08,
        "compute_usd_by_instance": {"ml.c5.xlarge": 0.0, "ml.p3.2xlarge": 3.83},
        "labeling_usd": 0.86,
        "compute_usd": 3.83,
        "total_usd": 4.69,
    }


def test_price_table_from_label_prices_keeps_all_in_figures() -> None:
    prices = PriceTable.from_label_prices(human_label_usd=0.26, auto_label_usd=0.08)
    assert (prices.human_label_usd, prices.auto_label_usd) == (D("0.26"), D("0.08"))
    assert prices.instance_hourly_usd == DEFAULT_INSTANCE_HOURLY_USD
    assert all_human_cost(100, prices).total_usd == all_human_cost(100).total_usd
    with pytest.raises(ConfigError, match="human_fee_usd"):
        PriceTable.from_label_prices(human_label_usd=-1, auto_label_usd=0)
