"""JSON Lines manifests: streaming read with per-line errors, write, and whole-record validation.

Manifests can hold millions of lines, so everything here is a generator over a file object:
memory stays flat except for the set of record ids kept to catch duplicate ``source-ref``s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import BoxError, ManifestError
from boxloop.core.formats.groundtruth import (
    METADATA_SUFFIX,
    Label,
    check_label_attribute_name,
    find_label_attributes,
    record_to_label,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import IO

    from boxloop.core.labels import LabelConfig

SOURCE_REF = "source-ref"
MAX_LINE_BYTES = 10 * 1024 * 1024  # Ground Truth rejects larger records long before this


def record_id(source_ref: str) -> str:
    """A stable id for a record: 16 hex chars of BLAKE2b over ``source-ref``.

    Line numbers change when a manifest is edited or merged; the object URI does not, so it
    keys every merge. 64 bits keep collisions negligible (~3e-8 at a million images).
    """
    return hashlib.blake2b(source_ref.encode("utf-8"), digest_size=8).hexdigest()


def iter_json_lines(
    stream: Iterable[bytes | str], *, source: str
) -> Iterator[tuple[int, dict[str, Any]] | ManifestError]:
    """Parse each line of a JSON Lines stream, yielding ``(line_no, object)`` or an error.

    Never raises on content: undecodable bytes, bad JSON and non-object lines come back as a
    ``ManifestError`` for that line (1-based), so callers can report them all and go on.
    Blank lines are skipped.
    """
    for item in iter_json_lines_with_text(stream, source=source):
        yield item if isinstance(item, ManifestError) else item[:2]


def iter_source_objects(
    stream: Iterable[bytes | str], *, source: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_no, object)`` of each line of an input manifest that must name its image.

    For a labeling job's input, where one bad line fails the job (as it fails Ground Truth's)
    rather than being reported and skipped.

    Raises:
        ManifestError: the first line that is not a JSON object, or has no non-empty
            ``source-ref``.
    """
    for item in iter_json_lines(stream, source=source):
        if isinstance(item, ManifestError):
            raise item
        number, obj = item
        ref = obj.get(SOURCE_REF)
        if not isinstance(ref, str) or not ref.strip():
            raise ManifestError(
                "is missing or not a non-empty string", source=source, line=number, field=SOURCE_REF
            )
        yield number, obj


def iter_json_lines_with_text(
    stream: Iterable[bytes | str], *, source: str
) -> Iterator[tuple[int, dict[str, Any], str] | ManifestError]:
    """Like ``iter_json_lines``, with each line's text (stripped) after its object.

    For a reader that may write a line back unchanged instead of encoding its object again.
    """
    for line_no, raw in enumerate(stream, start=1):
        if isinstance(raw, bytes):
            if len(raw) > MAX_LINE_BYTES:
                yield ManifestError(
                    f"line is {len(raw)} bytes, over {MAX_LINE_BYTES}", source=source, line=line_no
                )
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ManifestError(
                    f"is not UTF-8 (byte {exc.start}: {exc.reason})",
                    source=source,
                    line=line_no,
                    hint="save the manifest as UTF-8",
                )
                continue
        else:
            text = raw
        text = text.strip().lstrip("\ufeff")
        if not text:
            continue
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = (
                f"{exc.msg} at column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else "nesting too deep"
            )
            yield ManifestError(
                f"is not valid JSON: {reason}",
                source=source,
                line=line_no,
                hint="each line must be one JSON object",
            )
            continue
        if not isinstance(obj, dict):
            yield ManifestError(
                f"must be a JSON object, got {type(obj).__name__}", source=source, line=line_no
            )
            continue
        yield line_no, obj, text


def json_line(obj: Mapping[str, Any]) -> str:
    """One compact JSON object line without its newline (UTF-8 kept, no ASCII escaping)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_json_line(out: IO[str], obj: Mapping[str, Any]) -> None:
    """Write one compact JSON object line (see ``json_line``)."""
    out.write(json_line(obj))
    out.write("\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestLine:
    """One valid manifest line."""

    line: int
    id: str
    source_ref: str
    label: Label | None
    label_attribute: str | None
    fields: dict[str, Any]


@dataclass(slots=True)
class ValidationReport:
    """Counts and every error of a manifest validation, in line order."""

    source: str
    good: int = 0
    labeled: int = 0
    errors: list[ManifestError] = field(default_factory=list)

    @property
    def bad(self) -> int:
        """Number of rejected lines."""
        return len(self.errors)

    def summary(self) -> str:
        """One line for humans: how many lines were good, labeled and bad."""
        return (
            f"{self.source}: {self.good + self.bad} lines, {self.good} good "
            f"({self.labeled} labeled), {self.bad} bad"
        )


def _check_class_map(label: Label, config: LabelConfig, attr: str) -> None:
    expected = config.class_map
    for class_id, name in label.class_map.items():
        if expected.get(class_id) != name:
            want = expected.get(class_id, "no such class")
            raise ManifestError(
                f'class-map["{class_id}"] is {name!r} but the label config says {want!r}',
                field=f"{attr}{METADATA_SUFFIX}.class-map",
                hint="relabel or use the label config the job was run with",
            )
    for i, box in enumerate(label.detections.boxes):
        if box.class_id not in expected:
            raise ManifestError(
                f"{box.class_id} is not in the label config (0..{config.num_classes - 1})",
                field=f"{attr}.annotations[{i}].class_id",
            )


def parse_line(
    obj: dict[str, Any],
    *,
    attr: str | None,
    label_config: LabelConfig | None,
    line: int,
    source: str,
) -> ManifestLine:
    """Validate one parsed manifest object.

    Args:
        obj: The JSON object of the line.
        attr: The label attribute to read; ``None`` detects it from ``<k>-metadata`` keys.
        label_config: When given, every class id and class-map entry must agree with it.
        line: 1-based line number, for the error.
        source: Manifest name, for the error.

    Raises:
        ManifestError: located at ``source:line``.
    """
    try:
        ref = obj.get(SOURCE_REF)
        if ref is None:
            raise ManifestError(
                "is missing",
                field=SOURCE_REF,
                hint='every line needs {"source-ref": "s3://bucket/key.jpg"}',
            )
        if not isinstance(ref, str) or not ref.strip():
            raise ManifestError(f"must be a non-empty string, got {ref!r}", field=SOURCE_REF)
        attrs = [attr] if attr else find_label_attributes(obj)
        if len(attrs) > 1:
            raise ManifestError(
                f"has several label attributes {sorted(attrs)}",
                hint="pass --label-attribute to pick one",
            )
        label = None
        if attrs:
            problem = check_label_attribute_name(attrs[0])
            if problem:
                raise ManifestError(problem, field=attrs[0])
            label = record_to_label(obj, attrs[0], image_id=record_id(ref))
            if label is not None and label_config is not None:
                _check_class_map(label, label_config, attrs[0])
    except ManifestError as exc:
        raise exc.at(source=source, line=line) from None
    except BoxError as exc:
        raise ManifestError(str(exc), source=source, line=line) from None
    return ManifestLine(
        line=line,
        id=record_id(ref),
        source_ref=ref,
        label=label,
        label_attribute=attrs[0] if label is not None else None,
        fields=obj,
    )


def validate_manifest(
    stream: Iterable[bytes | str],
    *,
    source: str,
    attr: str | None = None,
    label_config: LabelConfig | None = None,
    report: ValidationReport | None = None,
) -> Iterator[ManifestLine]:
    """Yield every good line of a manifest; record every bad one in ``report``.

    Duplicated ``source-ref``s keep their first line; later ones are reported as errors that
    name the first line, because a second label for the same image is either a mistake or a
    paid relabel that needs a human decision, never something to drop silently.
    """
    report = report if report is not None else ValidationReport(source=source)
    first_line: dict[str, int] = {}
    for item in iter_json_lines(stream, source=source):
        if isinstance(item, ManifestError):
            report.errors.append(item)
            continue
        line_no, obj = item
        try:
            parsed = parse_line(
                obj, attr=attr, label_config=label_config, line=line_no, source=source
            )
        except ManifestError as exc:
            report.errors.append(exc)
            continue
        if parsed.id in first_line:
            report.errors.append(
                ManifestError(
                    f"repeats the image of line {first_line[parsed.id]}",
                    source=source,
                    line=line_no,
                    field=SOURCE_REF,
                    hint="keep one line per image",
                )
            )
            continue
        first_line[parsed.id] = line_no
        report.good += 1
        report.labeled += parsed.label is not None
        yield parsed
