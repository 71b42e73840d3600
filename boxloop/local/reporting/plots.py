"""The run report's plots, each rendered to PNG bytes with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` and an explicit ``FigureCanvasAgg``, never
``pyplot``: no global backend switch, no figure registry to leak, safe to call from any thread.
Each function returns ``None`` when the report holds nothing to plot, so the page can say so.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes

HUMAN_COLOR = "#3b6fb6"
AUTO_COLOR = "#e8833a"
UNLABELED_COLOR = "#d9d9d9"
BASELINE_COLOR = "#555555"
TARGET_COLOR = "#2e9e5b"
FIGSIZE_IN = (7.5, 3.6)
MAX_ITERATION_TICKS = 20
DPI = 110


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGSIZE_IN, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _iteration_axis(ax: Axes, iterations: Sequence[int], labels: Sequence[str] = ()) -> None:
    if len(iterations) > MAX_ITERATION_TICKS:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_xticks(list(iterations), labels=list(labels) or [str(k) for k in iterations])


def _legend(ax: Axes) -> None:
    """The legend to the right of the axes, where it never hides a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def labels_plot(per_iteration: Sequence[dict[str, Any]]) -> bytes | None:
    """Cumulative human and auto labels after each iteration, stacked under the unlabeled rest."""
    if not per_iteration:
        return None
    iterations = [r["iteration"] for r in per_iteration]
    human = [r["counts"]["human"] for r in per_iteration]
    auto = [r["counts"]["auto"] for r in per_iteration]
    unlabeled = [r["counts"]["unlabeled"] for r in per_iteration]
    fig, ax = _axes("Labels after each iteration (cumulative)", "iteration", "images")
    ax.bar(iterations, human, color=HUMAN_COLOR, label="human")
    ax.bar(iterations, auto, bottom=human, color=AUTO_COLOR, label="auto")
    ax.bar(
        iterations,
        unlabeled,
        bottom=[h + a for h, a in zip(human, auto, strict=True)],
        color=UNLABELED_COLOR,
        label="unlabeled",
    )
    for x, h, a, u in zip(iterations, human, auto, unlabeled, strict=True):
        if h + a + u:
            ax.annotate(
                f"{a / (h + a + u):.0%} auto",
                (x, h + a),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    _iteration_axis(ax, iterations)
    _legend(ax)
    return _png(fig)


def cost_plot(per_iteration: Sequence[dict[str, Any]], all_human: dict[str, Any]) -> bytes | None:
    """Simulated cost to date after each iteration against what humans alone would cost.

    Two references: the all-human cost of the whole data set (the flat line the run must stay
    under) and the all-human cost of the images labeled so far (what the same progress would
    have cost without auto-labeling), priced per image from the all-human breakdown.
    """
    points = [r for r in per_iteration if r.get("cost_to_date")]
    if not points:
        return None
    iterations = [r["iteration"] for r in points]
    spent = [r["cost_to_date"]["total_usd"] for r in points]
    baseline = float(all_human.get("total_usd", 0.0))
    n_images = int(all_human.get("human_labels", 0))
    per_image = baseline / n_images if n_images else 0.0
    labeled = [r["counts"]["human"] + r["counts"]["auto"] for r in points]
    fig, ax = _axes("Simulated labeling cost to date", "iteration", "USD")
    ax.plot(iterations, spent, marker="o", color=AUTO_COLOR, label="this run")
    ax.plot(
        iterations,
        [n * per_image for n in labeled],
        marker=".",
        linestyle=":",
        color=HUMAN_COLOR,
        label="all-human, same images",
    )
    ax.axhline(
        baseline,
        linestyle="--",
        color=BASELINE_COLOR,
        label=f"all-human, whole data set (${baseline:,.2f})",
    )
    ax.set_ylim(bottom=0, top=max([baseline, *spent]) * 1.12 or 1.0)
    _iteration_axis(ax, iterations)
    _legend(ax)
    return _png(fig)


def _shown_threshold(report: dict[str, Any]) -> tuple[float | None, str, bool]:
    """The threshold to draw, its legend label, and whether it was applied to the pool."""
    calibration = report.get("calibration") or {}
    applied = calibration.get("applied_threshold")
    if applied is not None:
        return applied, f"threshold {applied:.3f}", True
    found = calibration.get("threshold")
    if found is not None:
        return found, f"threshold {found:.3f}\n(not applied: gate failed)", False
    return None, "no threshold met the target: nothing auto-labeled", False


_BIN_STYLES = {
    "below": ("not auto-labeled", UNLABELED_COLOR, None),
    "straddles": ("straddles threshold", UNLABELED_COLOR, "///"),
    "above": ("auto-labeled", "#f2b68b", None),
}


def _side(low: float, high: float, threshold: float | None) -> str:
    """Where a histogram bin ``[low, high)`` lies relative to the threshold."""
    if threshold is None or high <= threshold:
        return "below"
    return "above" if low >= threshold else "straddles"


def confidence_plot(per_iteration: Sequence[dict[str, Any]]) -> bytes | None:
    """The pool's image confidences in the last iteration that scored any, with its threshold."""
    report = next(
        (r for r in reversed(per_iteration) if sum(r.get("confidence_histogram") or ())), None
    )
    if report is None:
        return None
    counts = report["confidence_histogram"]
    width = 1.0 / len(counts)
    threshold, label, applied = _shown_threshold(report)
    fig, ax = _axes(
        f"Pool image confidence, iteration {report['iteration']}", "image confidence", "images"
    )
    lefts = [k * width for k in range(len(counts))]
    sides = [_side(left, left + width, threshold if applied else None) for left in lefts]
    for side, (name, color, hatch) in _BIN_STYLES.items():
        kept = [k for k, s in enumerate(sides) if s == side]
        if kept:
            ax.bar(
                [lefts[k] for k in kept],
                [counts[k] for k in kept],
                width=width,
                align="edge",
                color=color,
                hatch=hatch,
                edgecolor="#999999",
                label=name,
            )
    if threshold is not None:
        ax.axvline(
            threshold,
            color=AUTO_COLOR if applied else BASELINE_COLOR,
            linestyle="-" if applied else "--",
            linewidth=2,
            label=label,
        )
    else:
        ax.plot([], [], " ", label=label)
    ax.set_xlim(0, 1)
    _legend(ax)
    return _png(fig)


def calibration_plot(per_iteration: Sequence[dict[str, Any]]) -> bytes | None:
    """Accuracy and coverage of validation images vs threshold, last iteration with a curve."""
    report = next(
        (r for r in reversed(per_iteration) if (r.get("calibration") or {}).get("curve")), None
    )
    if report is None:
        return None
    calibration = report["calibration"]
    curve = sorted(calibration["curve"])
    thresholds = [p[0] for p in curve]
    fig, ax = _axes(
        f"Calibration on {calibration.get('n_validation', '?')} validation images, "
        f"iteration {report['iteration']}",
        "threshold (accept images with confidence >= it)",
        "share",
    )
    metric = str(calibration.get("metric", "accuracy")).replace("_", " ")
    ax.step(
        thresholds,
        [p[1] for p in curve],
        where="post",
        color=AUTO_COLOR,
        label=f"{metric} of accepted",
    )
    ax.step(
        thresholds,
        [p[2] for p in curve],
        where="post",
        color=HUMAN_COLOR,
        label="coverage (share accepted)",
    )
    if calibration.get("target") is not None:
        ax.axhline(
            calibration["target"],
            color=TARGET_COLOR,
            linestyle="--",
            label=f"target {calibration['target']:.2f}",
        )
    threshold, label, _ = _shown_threshold(report)
    if threshold is not None:
        ax.axvline(threshold, color=BASELINE_COLOR, linestyle=":", label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _legend(ax)
    return _png(fig)


def accuracy_plot(reference_eval: dict[str, Any]) -> bytes | None:
    """Auto-labels' exact-match accuracy and mean IoU vs the reference, by labeling iteration."""
    rows = [r for r in reference_eval.get("auto_by_iteration", ()) if r["iteration"] is not None]
    if not rows:
        return None
    iterations = [r["iteration"] for r in rows]
    fig, ax = _axes(
        "Auto-labels vs reference, by the iteration that made them", "iteration", "share"
    )
    ax.bar(
        iterations,
        [r["exact_match"] for r in rows],
        color=AUTO_COLOR,
        alpha=0.8,
        label="exact match (auto)",
    )
    ax.plot(
        iterations,
        [r["mean_iou"] for r in rows],
        marker="o",
        color="#8c4a12",
        label="mean IoU (auto)",
    )
    for key, style, name in (("all", "--", "final data set"), ("human", ":", "human labels")):
        value = (reference_eval.get(key) or {}).get("exact_match")
        if value is not None:
            ax.axhline(
                value,
                color=BASELINE_COLOR,
                linestyle=style,
                label=f"exact match, {name} ({value:.1%})",
            )
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("iteration (auto-labels made in it)")
    _iteration_axis(ax, iterations, [f"{r['iteration']}\nn={r['count']:,}" for r in rows])
    _legend(ax)
    return _png(fig)
