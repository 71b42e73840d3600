"""Ledger records: one image, its label (if any) and boxloop's provenance, to and from JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from boxloop.core.errors import ManifestError
from boxloop.core.formats.groundtruth import (
    METADATA_SUFFIX,
    Label,
    label_to_fields,
    record_to_label,
    trusted_record_to_label,
)
from boxloop.core.manifests import SOURCE_REF, json_line, record_id

if TYPE_CHECKING:
    from collections.abc import Mapping

Role = Literal["seed", "validation", "test", "pool"]
ROLES: tuple[Role, ...] = get_args(Role)
PROVENANCE_KEY = "boxloop"
ID_KEY = "id"
IMAGE_OK = "ok"
"""``Provenance.image_check`` of an image the batch transform can take."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """boxloop's own facts about a record, kept under the ``boxloop`` key of its ledger line.

    Attributes:
        role: ``validation`` images calibrate the auto-label threshold and are never trained on;
            ``test`` images only measure; ``seed`` and ``pool`` images are for training and
            auto-labeling.
        iteration: The iteration that produced the current label.
        confidence: The latest image confidence from the model (pool images), for selection.
        threshold: The calibrated threshold an auto-label passed.
        model: The model (training job) that made an auto-label.
        attempts: Human labeling attempts that failed or expired.
        audit: True for an image sent to humans as an audit of would-be auto-labels.
        image_wh: The image size, once known (from the label or the image header).
        image_check: ``"ok"`` once ingest has read the image header and found an image the
            batch transform can take; else why it cannot (``format``, ``channels``,
            ``payload``, ``incomplete``, ``unreadable``, see ``boxloop.core.image_size``):
            such an image is never sent to inference, but humans can still label it.
            ``None``: not checked yet (a ledger from before the check; ingest checks it).
        image_problem: The reason in words, for the report, when the check failed.
    """

    role: Role = "pool"
    iteration: int | None = None
    confidence: float | None = None
    threshold: float | None = None
    model: str | None = None
    attempts: int = 0
    audit: bool = False
    image_wh: tuple[int, int] | None = None
    image_check: str | None = None
    image_problem: str | None = None

    @property
    def is_predictable(self) -> bool:
        """False when ingest found that the batch transform cannot take the image."""
        return self.image_check is None or self.image_check == IMAGE_OK

    def to_json(self) -> dict[str, Any]:
        """Compact JSON: fields at their defaults are left out."""
        data: dict[str, Any] = {}
        for name, default in _PROVENANCE_DEFAULTS:
            value = getattr(self, name)
            if value != default:
                data[name] = list(value) if isinstance(value, tuple) else value
        return data

    @classmethod
    def from_json(cls, data: Any) -> Provenance:
        """Parse the ``boxloop`` key; raises ``ManifestError`` naming the bad field."""
        if not isinstance(data, dict):
            raise ManifestError(
                f"must be an object, got {type(data).__name__}", field=PROVENANCE_KEY
            )
        if not _PROVENANCE_KEYS.issuperset(data):
            unknown = sorted(set(data) - _PROVENANCE_KEYS)
            raise ManifestError(f"has unknown keys {unknown}", field=PROVENANCE_KEY)
        if data.get("role", "pool") not in ROLES:
            raise ManifestError(
                f"must be one of {ROLES}, got {data['role']!r}", field=f"{PROVENANCE_KEY}.role"
            )
        if data.get("image_wh") is not None:
            data = {**data, "image_wh": tuple(data["image_wh"])}
        return cls(**data)


# Computed once: ``dataclasses.fields()`` on every call was about 7 % of a ledger pass.
_PROVENANCE_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, f.default) for f in dataclasses.fields(Provenance)
)
_PROVENANCE_KEYS = frozenset(name for name, _ in _PROVENANCE_DEFAULTS)
_NO_PROVENANCE = Provenance()
"""The provenance of a line without a ``boxloop`` key (frozen, so one instance serves all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One ledger line.

    Attributes:
        id: Stable id, a hash of ``source_ref``.
        source_ref: The image URI.
        label: The current label under the run's label attribute, or ``None``.
        provenance: boxloop's own facts.
        extra: Every other field of the input line, passed through untouched so that nothing
            the user had in their manifest is lost.
    """

    id: str
    source_ref: str
    label: Label | None = None
    provenance: Provenance = field(default_factory=Provenance)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # (attr, text) of the ledger line record_from_ledger parsed this record from, which
    # record_to_line writes back as it is. init=False: replace() and every other way of making
    # a changed record leave it None, so a changed record is always encoded anew.
    _ledger_line: tuple[str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def is_labeled(self) -> bool:
        """True once a human or the machine has labeled the image."""
        return self.label is not None

    @property
    def is_human_labeled(self) -> bool:
        """True when the label came from humans (it is never replaced by a machine label)."""
        return self.label is not None and self.label.human_annotated

    @property
    def image_wh(self) -> tuple[int, int] | None:
        """The image size if known, from the label or the provenance."""
        return self.label.detections.image_wh if self.label else self.provenance.image_wh

    def replace(self, **changes: Any) -> Record:
        """A copy with fields changed."""
        return dataclasses.replace(self, **changes)

    def with_provenance(self, **changes: Any) -> Record:
        """A copy with provenance fields changed."""
        return dataclasses.replace(self, provenance=dataclasses.replace(self.provenance, **changes))


def record_from_json(obj: Mapping[str, Any], attr: str) -> Record:
    """Parse a ledger (or input manifest) line.

    Raises:
        ManifestError: naming the field; the caller adds source and line.
    """
    ref = obj.get(SOURCE_REF)
    if not isinstance(ref, str) or not ref:
        raise ManifestError("is missing or not a string", field=SOURCE_REF)
    rid = record_id(ref)
    if ID_KEY in obj and obj[ID_KEY] != rid:
        raise ManifestError(
            f"is {obj[ID_KEY]!r} but source-ref hashes to {rid!r}",
            field=ID_KEY,
            hint="ids are derived from source-ref; remove the id field",
        )
    label = record_to_label(obj, attr, image_id=rid)
    provenance = (
        Provenance.from_json(obj[PROVENANCE_KEY]) if PROVENANCE_KEY in obj else _NO_PROVENANCE
    )
    return Record(
        id=rid, source_ref=ref, label=label, provenance=provenance, extra=_extra(obj, attr)
    )


def record_from_ledger(obj: Mapping[str, Any], attr: str, *, text: str | None = None) -> Record:
    """Parse a line of a ledger that boxloop wrote, trusting it instead of re-validating it.

    Only for boxloop's own files: the ledger versions of a run (written by ``write_records``
    from records that were validated when they came in) and ``sort_by_id``'s spills. Anything
    that comes from outside (an input manifest, a ledger named to resume from, a labeling
    job's output) goes through ``record_from_json``. The id is taken as written instead of
    re-hashed from ``source-ref``, and the label skips the format checks (see
    ``trusted_record_to_label``): that re-validation was most of the cost of every ledger pass,
    about 20 µs per labeled line. The result equals ``record_from_json``'s for such a line.

    Args:
        obj: The JSON object of the line.
        attr: The run's label attribute.
        text: The line as read. ``record_to_line`` then writes it back instead of encoding the
            record again, as long as the record is not changed: ``record_to_json`` of such a
            line gives the line back, so this only saves the work.

    Raises:
        ManifestError: when the line is not in the layout ``record_to_json`` writes (the
            caller adds source and line); it does not say which field, only what broke.
    """
    try:
        rid = obj[ID_KEY]
        label = trusted_record_to_label(obj, attr, image_id=rid)
        provenance = (
            Provenance.from_json(obj[PROVENANCE_KEY]) if PROVENANCE_KEY in obj else _NO_PROVENANCE
        )
        record = Record(
            id=rid,
            source_ref=obj[SOURCE_REF],
            label=label,
            provenance=provenance,
            extra=_extra(obj, attr),
        )
    except ManifestError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ManifestError(
            f"is not a ledger line as boxloop writes it ({type(exc).__name__}: {exc})",
            hint="a ledger from elsewhere must go through ingest (resume), which validates it",
        ) from None
    if text is not None:
        object.__setattr__(record, "_ledger_line", (attr, text))  # frozen: set once, here
    return record


def _extra(obj: Mapping[str, Any], attr: str) -> dict[str, Any]:
    """The line's fields that are not boxloop's own: kept as they are."""
    skip = {SOURCE_REF, ID_KEY, PROVENANCE_KEY, attr, attr + METADATA_SUFFIX}
    return {k: v for k, v in obj.items() if k not in skip}


def record_to_json(record: Record, attr: str) -> dict[str, Any]:
    """The ledger line of a record: input fields, id, label fields and provenance."""
    obj: dict[str, Any] = {SOURCE_REF: record.source_ref, ID_KEY: record.id, **record.extra}
    if record.label is not None:
        obj.update(label_to_fields(record.label, attr))
    provenance = record.provenance.to_json()
    if provenance:
        obj[PROVENANCE_KEY] = provenance
    return obj


def record_to_line(record: Record, attr: str) -> str:
    """The ledger line of a record as compact JSON text, without its newline.

    A record that ``record_from_ledger`` read with its text, unchanged since, gives that text
    back (same ``attr``); any other record is encoded from ``record_to_json``.
    """
    cached = record._ledger_line
    if cached is not None and cached[0] == attr:
        return cached[1]
    return json_line(record_to_json(record, attr))
