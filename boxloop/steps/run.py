"""The run's state as it travels between steps: URIs, counts and the iteration, nothing more.

Every step reads the ledger named here and writes new immutable files under the run's root,
named by ``RunPaths``; the state payload stays a few hundred bytes whatever the dataset size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import iter_lines, open_for_write, read_text
from boxloop.core.config import LoopConfig
from boxloop.core.errors import ConfigError, ManifestError
from boxloop.core.ledger import LedgerCounts
from boxloop.core.manifests import iter_json_lines_with_text
from boxloop.core.model_state import ModelState
from boxloop.core.records import Record, record_from_json, record_from_ledger, record_to_line

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

CONFIG_ENV = "BOXLOOP_CONFIG"
BUCKET_ENV = "BOXLOOP_BUCKET"
KMS_ENV = "BOXLOOP_KMS_KEY_ARN"
LEDGER_STEPS = ("ingest", "merge", "filter")
"""The steps that write a ledger version, in the order they run within an iteration."""
MAX_LEDGER_PARTS = 999
"""Ledger versions one step writes in one iteration: three digits keep their names in order."""
_NAME_RE = re.compile(r"[^a-zA-Z0-9-]+")


def run_hash(run_id: str) -> str:
    """Eight hex chars naming the run inside job names (which SageMaker caps at 63 chars)."""
    return hashlib.blake2b(run_id.encode(), digest_size=4).hexdigest()


def part_name(name: str, part: int) -> str:
    """``name`` for part 1, ``<stem>.part-<NNN>.<suffix>`` for part 2 on.

    A step that writes one file per part of an iteration (merge's ledger and warnings per
    labeling job, ingest's ledger and rejected images per pass of image checks) keeps for
    part 1 the name a one-part iteration always had; a later part's name sorts after it
    (``.p`` > ``.j``), so the newest version is the last name in a listing.

    Raises:
        ValueError: for a part past ``MAX_LEDGER_PARTS``, whose name would sort too early.
    """
    if not 1 <= part <= MAX_LEDGER_PARTS:
        raise ValueError(f"part must be 1..{MAX_LEDGER_PARTS}, got {part}")
    if part == 1:
        return name
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.part-{part:03d}.{suffix}"


def run_id_for(execution_name: str, execution_arn: str | None = None) -> str:
    """``<execution name, folder-safe>-<8 hex of the execution ARN>``: one run per execution.

    The name alone is not enough: ``run_1``, ``run.1`` and ``run-1`` are one folder-safe name,
    and two stacks (or regions, or accounts) sharing a bucket or a ``jobPrefix`` both accept
    the name ``run-1``. The execution ARN (``$$.Execution.Id``) names the state machine, region
    and account too, so its hash tells them apart; the run folder still starts with the
    execution name, so a user finds it by that name. Job names hash the run id in turn.

    Args:
        execution_name: ``$$.Execution.Name``.
        execution_arn: ``$$.Execution.Id``; without it (a direct call) the exact name is hashed.
    """
    return f"{safe_name(execution_name)}-{run_hash(execution_arn or execution_name)}"


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where each step writes: ``<root>/iter-<k>/<step>/...`` plus the ledger versions."""

    root: str

    def config(self) -> str:
        """The effective LoopConfig of the run."""
        return f"{self.root}/config.json"

    def ledger(self, iteration: int, step: str, part: int = 1) -> str:
        """An immutable ledger version written by ``step`` in ``iteration``.

        Names sort in the order the versions are written (iteration, then step, then part),
        so the newest ledger of a run is the last name in a listing. A step that writes
        several versions in one iteration (merge per labeling job, ingest per pass of image
        checks) names them with ``part_name``.

        Raises:
            ValueError: for a part past ``MAX_LEDGER_PARTS``, whose name would sort too early.
        """
        name = f"iter-{iteration:03d}-{LEDGER_STEPS.index(step)}-{step}.jsonl"
        return f"{self.root}/ledger/{part_name(name, part)}"

    def ledger_part(self, location: str, iteration: int, step: str) -> int:
        """Which part of ``step``'s ledger versions of ``iteration`` ``location`` is; 0: none."""
        first = self.ledger(iteration, step)
        if location == first:
            return 1
        head, tail = first.removesuffix(".jsonl") + ".part-", ".jsonl"
        digits = location[len(head) : -len(tail)]
        if location.startswith(head) and location.endswith(tail) and digits.isdigit():
            return int(digits)
        return 0

    def step(self, iteration: int, step: str, name: str = "") -> str:
        """A file (or prefix when ``name`` is empty) of a step of an iteration."""
        base = f"{self.root}/iter-{iteration:03d}/{step}"
        return f"{base}/{name}" if name else f"{base}/"

    def scratch(self, iteration: int, step: str) -> str:
        """A prefix for bulky intermediate files: ``tmp/<run>/...``.

        The bucket's lifecycle rule expires ``tmp/``; nothing there is needed once the
        iteration has finished (the transform's one ``.out`` per image).
        """
        head, sep, run = self.root.rpartition("/runs/")
        base = f"{head}/tmp/{run}" if sep else f"{self.root}/tmp"
        return f"{base}/iter-{iteration:03d}/{step}/"

    def output(self, name: str) -> str:
        """A final output of the run."""
        return f"{self.root}/output/{name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunState:
    """The ``run`` block of the state machine payload.

    Attributes:
        run_id: ``<execution name>-<hash of the execution ARN>`` (``run_id_for``); the run's
            folder and job names derive from it.
        root: ``s3://bucket/runs/<run_id>`` (or a local folder in tests).
        ledger: The current ledger version.
        iteration: The current iteration, 0 for the seed round.
        counts: Ledger counts after the last step.
        model: The last trained model and the thresholds its iteration chose, or ``None``
            (a ``dict`` is parsed with ``ModelState.from_json``).
        decision: ``"continue"`` or ``"finalize"``, set by filter-low-confidence.
        stop_reason: Why the loop stopped (or will stop).
        stalled: Iterations in a row that labeled nothing new.
    """

    run_id: str
    root: str
    ledger: str
    iteration: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    model: ModelState | None = None
    decision: str = "continue"
    stop_reason: str | None = None
    stalled: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelState.from_json(self.model))

    @property
    def paths(self) -> RunPaths:
        """The naming scheme of this run's files."""
        return RunPaths(self.root)

    def job_name(self, config: LoopConfig, kind: str, *, iteration: int | None = None) -> str:
        """``<prefix>-<run hash>-<iteration>-<kind>``: deterministic and unique per run.

        At most 20 + 24 characters: the ASL appends ``-<retry count>`` to name each attempt of
        a SageMaker job apart, well within SageMaker's 63, and every name matches the IAM
        pattern ``<jobPrefix>-*``.
        """
        k = self.iteration if iteration is None else iteration
        return f"{config.job_prefix}-{run_hash(self.run_id)}-{k:03d}-{kind}"

    def replace(self, **changes: Any) -> RunState:
        """A copy with fields changed."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The payload form (``model`` as ``ModelState.to_json`` writes it)."""
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_json() if self.model is not None else None
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunState:
        """Parse the ``run`` block; raises ConfigError naming what is missing."""
        if not isinstance(data, dict):
            raise ConfigError([f"run: expected an object, got {type(data).__name__}"])
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("run_id", "root", "ledger") if k not in data]
        if missing:
            raise ConfigError([f"run.{k} is missing" for k in missing])
        return cls(**{k: v for k, v in data.items() if k in known})


def safe_name(text: str, max_len: int = 40) -> str:
    """Letters, digits and hyphens only, for folder and job names."""
    return _NAME_RE.sub("-", text).strip("-")[:max_len] or "run"


def default_config() -> LoopConfig:
    """The stack's LoopConfig, from the ``BOXLOOP_CONFIG`` environment variable (JSON)."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ConfigError([f"environment variable {CONFIG_ENV} is not set (the stack sets it)"])
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{CONFIG_ENV} is not valid JSON: {exc.msg}"]) from exc
    return LoopConfig.from_dict(data, source=CONFIG_ENV)


def load_config(run: RunState) -> LoopConfig:
    """The run's effective config, written by ingest."""
    return LoopConfig.from_dict(
        json.loads(read_text(run.paths.config())), source=run.paths.config()
    )


def iter_records(
    location: str,
    attr: str,
    *,
    where: Callable[[dict[str, Any]], bool] | None = None,
    trusted: bool = False,
) -> Iterator[Record]:
    """Stream the records of a ledger file; a bad line is an error naming file and line.

    ``where`` picks lines by their raw JSON object before they are parsed into records, for a
    pass that needs few of them: parsing a record (its label's boxes above all) is most of the
    cost of a pass. Skipped lines are not validated; a pass over every line still is, unless
    ``trusted``.

    ``trusted=True`` is for a ledger version this run wrote (``RunState.ledger``): its lines
    are parsed with ``record_from_ledger``, which does not re-validate what boxloop validated
    on the way in, and keeps each line's text so that ``write_records`` copies an unchanged
    record's line instead of encoding it again. Any other file (an input manifest, a ledger
    to resume from, a labeling job's output) must be read with the default, which validates
    every line.
    """
    for item in iter_json_lines_with_text(iter_lines(location), source=location):
        if isinstance(item, ManifestError):
            raise item
        line_no, obj, text = item
        if where is not None and not where(obj):
            continue
        try:
            if trusted:
                yield record_from_ledger(obj, attr, text=text)
            else:
                yield record_from_json(obj, attr)
        except ManifestError as exc:
            raise exc.at(source=location, line=line_no) from None


def write_records(
    location: str, records: Iterable[Record], attr: str, *, max_attempts: int | None = None
) -> LedgerCounts:
    """Write records as JSON Lines and return their counts (one pass)."""
    counts = LedgerCounts()
    with open_for_write(location) as out:
        for record in records:
            counts.add(record, max_attempts=max_attempts)
            out.write(record_to_line(record, attr))
            out.write("\n")
    return counts
