"""Tables, the learning-curve plot and the generated block of the "Label efficiency" section."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.docblock import replace_block

HEADING = "## Label efficiency"
SUMMARY_KEYS = (
    "human_labels",
    "unlabeled",
    "auto_share",
    "auto_exact_match",
    "auto_mean_iou",
    "dataset_exact_match",
    "cost_usd",
    "all_human_usd",
    "wall_s",
)
BOXLOOP = "boxloop/least_confidence"
RANDOM = "boxloop/random"


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and spread (population std) per configuration over its seeds."""
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        summary[name] = {"seeds": sorted(r["seed"] for r in mine)}
        for key in SUMMARY_KEYS:
            values = [r[key] for r in mine if r.get(key) is not None]
            summary[name][key] = {
                "mean": statistics.fmean(values) if values else None,
                "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            }
    return summary


def _cell(stat: dict[str, Any], kind: str) -> str:
    mean, std = stat["mean"], stat["std"]
    if mean is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * mean:.1f}% ± {100 * std:.1f}"
    if kind == "usd":
        return f"${mean:,.2f} ± {std:.2f}"
    if kind == "iou":
        return f"{mean:.3f} ± {std:.3f}"
    return f"{mean:,.0f} ± {std:,.0f}"


def _summary_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    columns = (
        ("human labels", "human_labels", "num"),
        ("left unlabeled", "unlabeled", "num"),
        ("auto-labeled", "auto_share", "pct"),
        ("auto-label exact match", "auto_exact_match", "pct"),
        ("auto-label mean IoU", "auto_mean_iou", "iou"),
        ("dataset exact match", "dataset_exact_match", "pct"),
        ("cost", "cost_usd", "usd"),
        ("all-human cost", "all_human_usd", "usd"),
        ("wall s", "wall_s", "num"),
    )
    out = [
        "| configuration | seeds | " + " | ".join(c[0] for c in columns) + " |",
        "|---|---|" + "--:|" * len(columns),
    ]
    for name, s in summary.items():
        cells = [_cell(s[key], kind) for _, key, kind in columns]
        out.append(f"| `{name}` | {', '.join(map(str, s['seeds']))} | " + " | ".join(cells) + " |")
    return out


def _row_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| configuration | seed | iterations | stop | human | auto | unlabeled | auto exact "
        "| dataset exact | wall s | cores |",
        "|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        auto = r["auto_exact_match"]
        out.append(
            f"| `{r['config']}` | {r['seed']} | {r['iterations']} | {r['stop_reason']} | "
            f"{r['human_labels']} | {r['auto_labels']} | {r['unlabeled']} | "
            f"{'n/a' if auto is None else f'{100 * auto:.1f}%'} | "
            f"{100 * (r['dataset_exact_match'] or 0):.1f}% | {r['wall_s']:.0f} | "
            f"{r.get('cpus', '?')} |"
        )
    return out


def human_label_saving(rows: list[dict[str, Any]]) -> tuple[float, list[int]] | None:
    """Share of human labels least-confidence saves over random selection (both calibrated).

    Only seeds run under both count, so a seed one of them lacks cannot tilt the comparison.

    Returns:
        ``(1 - mean ours / mean random, the seeds compared)``, or ``None`` without a common seed.
    """
    human = {(r["config"], r["seed"]): r["human_labels"] for r in rows}
    seeds = sorted({s for c, s in human if c == BOXLOOP} & {s for c, s in human if c == RANDOM})
    if not seeds:
        return None
    mine = statistics.fmean(human[BOXLOOP, s] for s in seeds)
    theirs = statistics.fmean(human[RANDOM, s] for s in seeds)
    return (1.0 - mine / theirs if theirs else 0.0), seeds


def render(results: dict[str, Any]) -> str:
    """The generated part of the section, from a results document."""
    settings, m = results["settings"], results.get("machine", {})
    rows, summary = results["rows"], results["summary"]
    seeds = sorted({r["seed"] for r in rows})
    saving = human_label_saving(rows)
    out = [
        "### Command",
        "",
        "```sh",
        f".venv/bin/python -m bench.label_efficiency --images {settings['images']} "
        f"--seeds {' '.join(map(str, seeds))} --image-steps {settings['image_steps']} "
        f"--max-iterations {settings['max_iterations']} --jobs {settings['jobs']}",
        "```",
        "",
        f"Machine: {m.get('nproc', '?')} cores ({m.get('cpu_model', '?')}), Python "
        f"{m.get('python', '?')}. {len(rows)} runs of {settings['images']} generated images "
        f"(difficulty {settings['difficulty']}), {settings['image_steps']:,} image-steps of "
        f"training per iteration, at most {settings['max_iterations']} iterations; wall "
        "times are per run with the cores it had (column `cores`).",
        "",
        "### Means over seeds (± population standard deviation)",
        "",
        *_summary_table(summary),
        "",
    ]
    if saving is not None:
        share, common = saving
        out += [
            f"Human labels, `{BOXLOOP}` vs `{RANDOM}` on the seeds both ran "
            f"({', '.join(map(str, common))}): {abs(100 * share):.1f}% "
            f"{'fewer' if share >= 0 else 'more'}.",
            "",
        ]
    out += [
        "### Learning curves",
        "",
        "![Images labeled against human labels used, per configuration and seed]"
        "(img/label_efficiency.png)",
        "",
        "### Every run",
        "",
        *_row_table(rows),
    ]
    return "\n".join(out).rstrip() + "\n"


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Images labeled (human + auto) against human labels used, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(dict.fromkeys(r["config"] for r in rows))
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for r in rows:
        # the per-iteration points, then the end state (a last human-only round has no report)
        human = [p["human"] for p in r["curve"]] + [r["human_labels"]]
        labeled = [p["human"] + p["auto"] for p in r["curve"]]
        labeled.append(r["human_labels"] + r["auto_labels"])
        first = r["seed"] == min(q["seed"] for q in rows if q["config"] == r["config"])
        ax.plot(
            human,
            labeled,
            marker="o",
            markersize=3,
            color=colors[r["config"]],
            label=r["config"] if first else None,
            alpha=0.8,
        )
    total = max(r["images"] for r in rows)
    ax.plot([0, total], [0, total], color="grey", linestyle=":", label="all-human")
    ax.set_xlabel("human labels used")
    ax.set_ylabel("images labeled (human + machine)")
    ax.set_xlim(0, total)
    ax.set_ylim(0, total * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def update_doc(path: Path, generated: str) -> None:
    """Replace the generated block of the Label efficiency section; the prose stays."""
    replace_block(path, name="bench.label_efficiency", heading=HEADING, generated=generated)
