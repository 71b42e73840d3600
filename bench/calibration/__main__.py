"""Replay the auto-label rules on kept runs: ``python -m bench.calibration --help``.

For each run in ``bench/calibration/inputs/`` (see :mod:`bench.calibration.extract`), the
images its last model predicted (validation and open pool, with the reference) are the
population. Each draw takes ``n`` of them at random as validation; the rest are the images a
rule's cut is applied to, judged against the reference:

* coverage: share of draws whose accepted images meet the rule's promise (an empty
  acceptance breaks no promise); ``+ boxes``: the share of boxes right meets it too;
* certified share: mean share of the rest accepted;
* oracle share: mean largest most-confident share of the rest whose true accuracy meets
  the target (exact match 0.9);
* efficiency: certified / oracle;
* reachable share: the largest most-confident share of the population whose true exact share,
  shown on the validation images expected there (``size * share``) with no unlucky draw, would
  pass the rule's bound: what any rule that must show the target at level 0.8 on that many
  images could certify. Certified / reachable is what the walk loses; reachable / oracle what
  the bound costs at that validation size.

Then each run's real split (its validation images, its open pool) is decided once: what the
rule would have auto-labeled in that run, and how accurate that was.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.calibration.rules import LEVEL, PROMISES, RULES, TARGET, Row
from bench.docblock import replace_block
from boxloop.core.calibration import clopper_pearson_lower

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SIZES = (60, 120, 250)


class _Rest:
    """The images a cut is applied to, most confident first, with prefix sums."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows
        self.negated = [-r[0] for r in rows]  # ascending, for bisect
        self.sums = [[0.0] * 5]
        for r in rows:
            last = self.sums[-1]
            self.sums.append(
                [last[0] + r[1], last[1] + r[2], last[2] + r[3], last[3] + r[4], last[4] + r[6]]
            )

    def accepted(self, threshold: float | None) -> int:
        """Images at or above ``threshold``."""
        if threshold is None:
            return 0
        return bisect_left(self.negated, -threshold + 1e-15) if threshold > 0 else len(self.rows)

    def figures(self, k: int) -> dict[str, float | None]:
        exact, iou, boxes, right, empty = self.sums[k]
        return {
            "exact": exact / k if k else None,
            "iou": iou / k if k else None,
            "box": right / boxes if boxes else None,
            "empty": empty / k if k else None,
        }

    def largest_prefix(self, passes: Callable[[int, float], bool]) -> int:
        """The largest most-confident prefix (whole ties) whose size and exact sum pass."""
        best = 0
        for k in range(1, len(self.rows) + 1):
            if k < len(self.rows) and self.rows[k][0] == self.rows[k - 1][0]:
                continue
            if passes(k, self.sums[k][0]):
                best = k
        return best

    def oracle(self) -> int:
        """The largest most-confident prefix (whole ties) whose exact share meets the target."""
        return self.largest_prefix(lambda k, exact: exact / k >= TARGET - 1e-12)


def reachable_share(rows: list[Row], size: int) -> float:
    """The largest most-confident share whose true exact share a bound on ``size`` could show.

    At share ``k / n`` of the population, ``size * k / n`` validation images are expected at
    or above the cut; with exactly the population's exact share among them (no unlucky draw),
    does their Clopper-Pearson bound at level ``LEVEL`` reach the target? Ties go whole.
    """
    ordered = _Rest(sorted(rows, key=lambda r: -r[0]))
    n = len(ordered.rows)

    def shown(k: int, exact: float) -> bool:
        expected = round(size * k / n)
        lower = clopper_pearson_lower(round(expected * exact / k), expected, 1 - LEVEL)
        return bool(expected) and lower >= TARGET - 1e-12

    return ordered.largest_prefix(shown) / n


def _covered(figures: dict[str, float | None], rule: str) -> tuple[bool, bool]:
    metric, target = PROMISES[rule]
    value = figures[metric]
    images = value is None or value >= target - 1e-12
    box = figures["box"]
    return images, images and (box is None or box >= target - 1e-12)


def replay(rows: list[Row], size: int, draws: int, seed: int) -> dict[str, dict[str, Any]]:
    """Every rule's figures over ``draws`` random validation draws of ``size`` images."""
    rng = random.Random(seed)
    tallies: dict[str, dict[str, Any]] = {
        rule: {"covered": 0, "covered_boxes": 0, "share": [], "exact": [], "empty": []}
        for rule in RULES
    }
    oracle_shares = []
    for _ in range(draws):
        chosen = set(rng.sample(range(len(rows)), size))
        validation = [rows[i] for i in sorted(chosen)]
        rest = _Rest([rows[i] for i in range(len(rows)) if i not in chosen])
        pool = [r[0] for r in rest.rows]
        oracle_shares.append(rest.oracle() / len(rest.rows))
        for rule, decide in RULES.items():
            k = rest.accepted(decide(validation, pool))
            figures = rest.figures(k)
            images, boxes = _covered(figures, rule)
            tally = tallies[rule]
            tally["covered"] += images
            tally["covered_boxes"] += boxes
            tally["share"].append(k / len(rest.rows))
            if k:
                tally["exact"].append(figures["exact"])
                tally["empty"].append(figures["empty"])
    oracle = statistics.fmean(oracle_shares)
    return {
        rule: {
            "coverage": t["covered"] / draws,
            "coverage_boxes": t["covered_boxes"] / draws,
            "certified_share": statistics.fmean(t["share"]),
            "oracle_share": oracle,
            "efficiency": statistics.fmean(t["share"]) / oracle if oracle else None,
            "accepting_draws": len(t["exact"]) / draws,
            "accepted_exact": statistics.fmean(t["exact"]) if t["exact"] else None,
            "accepted_empty": statistics.fmean(t["empty"]) if t["empty"] else None,
        }
        for rule, t in tallies.items()
    }


def real_split(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """Each rule on the run's own validation images, applied to its own open pool."""
    validation = [r for r in rows if r[7] == "v"]
    rest = _Rest([r for r in rows if r[7] == "p"])
    pool = [r[0] for r in rest.rows]
    found = {}
    for rule, decide in RULES.items():
        threshold = decide(validation, pool)
        k = rest.accepted(threshold)
        found[rule] = {"threshold": threshold, "accepted": k, **rest.figures(k)}
    found["oracle"] = {"accepted": rest.oracle(), "pool": len(rest.rows)}
    return found


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(results: dict[str, Any]) -> str:
    """The generated block of docs/benchmarks.md."""
    runs = results["runs"]
    lines = [
        "### Command",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        f"{results['draws']} random validation draws per run and size; "
        f"{len(runs)} runs (inputs in `bench/calibration/inputs/`, made as each says below).",
        "",
        "### All runs pooled",
        "",
        "Coverage: mean over runs (lowest run); shares: mean over runs; efficiency: summed "
        "certified / summed oracle share (a rule that breaks its promise can exceed 100 %).",
        "",
        "| rule | validation images | coverage | coverage + boxes | certified share | "
        "oracle share | efficiency | reachable share | certified / reachable | accepted exact |"
        " accepted empty |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for rule in RULES:
        for size in results["sizes"]:
            cells = [r["draws"][str(size)][rule] for r in runs.values() if str(size) in r["draws"]]
            if not cells:
                continue

            def mean(key: str, cells: list[dict[str, Any]] = cells) -> float | None:
                values = [c[key] for c in cells if c[key] is not None]
                return statistics.fmean(values) if values else None

            lowest = min(c["coverage"] for c in cells)
            lowest_boxes = min(c["coverage_boxes"] for c in cells)
            oracle = sum(c["oracle_share"] for c in cells)
            certified = sum(c["certified_share"] for c in cells)
            efficiency = certified / oracle if oracle else None
            reach = sum(c.get("reachable_share", 0.0) for c in cells)
            lines.append(
                f"| `{rule}` | {size} | {_pct(mean('coverage'))} ({_pct(lowest)}) | "
                f"{_pct(mean('coverage_boxes'))} ({_pct(lowest_boxes)}) | "
                f"{_pct(mean('certified_share'))} | {_pct(mean('oracle_share'))} | "
                f"{_pct(efficiency)} | {_pct(reach / len(cells))} | "
                f"{_pct(certified / reach if reach else None)} | "
                f"{_pct(mean('accepted_exact'))} | {_pct(mean('accepted_empty'))} |"
            )
    lines += [
        "",
        "### Per run, 120 validation images",
        "",
        "| run | images | oracle share | reachable share | `new` coverage | `new` certified |"
        " `new` efficiency | `old` coverage | `old` efficiency |"
        " `ground-truth` coverage (IoU 0.6) | its accepted exact |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, run in runs.items():
        cell = run["draws"]["120"]
        new = cell["new"]
        lines.append(
            f"| {name} | {run['images']} | {_pct(new['oracle_share'])} | "
            f"{_pct(new.get('reachable_share'))} | {_pct(new['coverage'])} | "
            f"{_pct(new['certified_share'])} | "
            f"{_pct(new['efficiency'])} | {_pct(cell['old']['coverage'])} | "
            f"{_pct(cell['old']['efficiency'])} | {_pct(cell['ground-truth']['coverage'])} | "
            f"{_pct(cell['ground-truth']['accepted_exact'])} |"
        )
    lines += [
        "",
        "### Each run's own split (its validation images, its open pool)",
        "",
        "| run | validation | open pool | oracle | `new`: accepted, exact, boxes | "
        "`old`: accepted, exact | `ground-truth`: accepted, exact, IoU |",
        "|---|--:|--:|--:|---|---|---|",
    ]
    for name, run in runs.items():
        split = run["split"]
        new, old, gt = split["new"], split["old"], split["ground-truth"]
        lines.append(
            f"| {name} | {run['validation']} | {split['oracle']['pool']} | "
            f"{split['oracle']['accepted']} | {new['accepted']}, {_pct(new['exact'])}, "
            f"{_pct(new['box'])} | {old['accepted']}, {_pct(old['exact'])} | "
            f"{gt['accepted']}, {_pct(gt['exact'])}, {_pct(gt['iou'])} |"
        )
    lines += ["", "Runs:", ""]
    lines += [f"- `{name}`: `{run['command']}`" for name, run in runs.items()]
    lines += ["", "![Coverage and efficiency per rule](img/calibration.png)", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Coverage and efficiency against validation size, one line per rule and run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    sizes = results["sizes"]
    colors = {"new": "C0", "old": "C3", "fixed-0.5": "C2", "ground-truth": "C1"}
    for rule in RULES:
        for index, run in enumerate(results["runs"].values()):
            drawn = [s for s in sizes if str(s) in run["draws"]]
            cells = [run["draws"][str(s)][rule] for s in drawn]
            label = rule if index == 0 else None
            left.plot(
                drawn,
                [c["coverage"] for c in cells],
                "o-",
                color=colors[rule],
                alpha=0.6,
                label=label,
            )
            right.plot(
                drawn,
                [c["efficiency"] or 0 for c in cells],
                "o-",
                color=colors[rule],
                alpha=0.6,
                label=label,
            )
    left.axhline(0.8, color="grey", linestyle="--", linewidth=1, label="1 - delta")
    right.axhline(0.9, color="grey", linestyle=":", linewidth=1, label="aim 0.9")
    left.set(xlabel="validation images", ylabel="coverage", title="Promise kept", ylim=(0, 1.02))
    right.set(
        xlabel="validation images",
        ylabel="certified / oracle share",
        title="Efficiency (above 1: promise broken)",
        ylim=(0, 1.6),
    )
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws per run and size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", type=Path, default=HERE / "inputs")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true", help="write results.json only")
    parser.add_argument(
        "--report-only", action="store_true", help="redraw the doc block and plot from --out"
    )
    args = parser.parse_args()
    if args.report_only:
        _write_doc(json.loads(args.out.read_text(encoding="utf-8")), args.doc)
        return
    runs = {}
    for path in sorted(args.inputs.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["rows"]
        draws = {
            str(size): replay(rows, size, args.draws, args.seed)
            for size in SIZES
            if size < len(rows) - 20
        }
        for size, cell in draws.items():
            reach = reachable_share(rows, int(size))
            for figures in cell.values():
                figures["reachable_share"] = reach
        runs[data["name"]] = {
            "command": data.get("command", ""),
            "images": len(rows),
            "validation": sum(r[7] == "v" for r in rows),
            "draws": draws,
            "split": real_split(rows),
        }
        print(f"{data['name']}: {json.dumps(draws.get('120', {}).get('new', {}))}", flush=True)
    results = {
        "command": f"python -m bench.calibration --draws {args.draws} --seed {args.seed}",
        "draws": args.draws,
        "sizes": list(SIZES),
        "runs": runs,
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if not args.no_doc:
        _write_doc(results, args.doc)


def _write_doc(results: dict[str, Any], doc: Path) -> None:
    plot(results, doc.parent / "img" / "calibration.png")
    replace_block(
        doc, name="bench.calibration", heading="## Calibration", generated=render(results)
    )


if __name__ == "__main__":
    main()
