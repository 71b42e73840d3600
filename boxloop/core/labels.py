"""The label config: the one source of class ids, class names and ``num_classes``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

# Ground Truth's label category quotas (SageMaker developer guide, "Input Data Quotas"): a
# bounding-box job takes at most 50 categories, and no category name exceeds 256 characters.
MAX_LABELS = 50
MAX_LABEL_CHARS = 256


@dataclass(frozen=True, slots=True)
class LabelConfig:
    """Class names in class-id order: class id ``i`` is ``class_names[i]``.

    Ground Truth numbers bounding-box classes by their position in the label category config,
    and the built-in Object Detection algorithm needs ``num_classes`` equal to that count, so
    both come from here and nowhere else.
    """

    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        problems = []
        if not self.class_names:
            problems.append("labels: at least one class name is needed")
        if len(self.class_names) > MAX_LABELS:
            problems.append(
                f"labels: Ground Truth allows at most {MAX_LABELS} box classes, "
                f"got {len(self.class_names)}"
            )
        for i, name in enumerate(self.class_names):
            if not isinstance(name, str) or not name.strip():
                problems.append(f"labels[{i}]: class names must be non-empty strings, got {name!r}")
            elif len(name) > MAX_LABEL_CHARS:
                problems.append(
                    f"labels[{i}]: Ground Truth allows at most {MAX_LABEL_CHARS} characters in "
                    f"a label category name, got {len(name)} ({name[:20]!r}...)"
                )
        if len(set(self.class_names)) != len(self.class_names):
            dupes = sorted({n for n in self.class_names if self.class_names.count(n) > 1})
            problems.append(f"labels: class names must be unique, repeated: {dupes}")
        if problems:
            raise ConfigError(problems)

    @property
    def num_classes(self) -> int:
        """How many classes the detector predicts."""
        return len(self.class_names)

    @property
    def class_map(self) -> dict[int, str]:
        """Class id -> name, as Ground Truth's ``class-map`` (with int keys)."""
        return dict(enumerate(self.class_names))

    def to_label_category_config(self) -> dict[str, Any]:
        """The ``LabelCategoryConfigS3Uri`` document that CreateLabelingJob reads."""
        return {
            "document-version": "2018-11-28",
            "labels": [{"label": name} for name in self.class_names],
        }

    @classmethod
    def from_json(cls, text: str, *, source: str = "label config") -> LabelConfig:
        """Parse a label category config, a class map or a list of names.

        Accepted: ``{"labels": [{"label": "car"}, ...]}`` (Ground Truth's label category
        config), ``{"0": "car", "1": "person"}`` (a class-map with ids 0..n-1), or
        ``["car", "person"]``.

        Raises:
            ConfigError: naming ``source`` and what is wrong.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})"]
            ) from exc
        return cls.from_value(data, source=source)

    @classmethod
    def from_value(cls, data: Any, *, source: str = "label config") -> LabelConfig:
        """Like ``from_json`` for an already-parsed JSON value."""
        if isinstance(data, list) and all(isinstance(x, str) for x in data):
            return cls(tuple(data))
        if isinstance(data, dict) and isinstance(data.get("labels"), list):
            names = [x.get("label") if isinstance(x, dict) else None for x in data["labels"]]
            if all(isinstance(n, str) for n in names):
                return cls(tuple(names))
        if (
            isinstance(data, dict)
            and data
            and all(isinstance(k, str) and k.isdigit() for k in data)
        ):
            return cls.from_class_map({int(k): v for k, v in data.items()}, source=source)
        raise ConfigError(
            [
                f'{source}: expected {{"labels": [{{"label": name}}, ...]}}, a class-map '
                '{"0": name, ...} or a list of names'
            ]
        )

    @classmethod
    def from_class_map(
        cls, class_map: Mapping[int, str], *, source: str = "class-map"
    ) -> LabelConfig:
        """A label config from a class map whose ids are exactly 0..n-1."""
        ids = sorted(class_map)
        if ids != list(range(len(ids))):
            raise ConfigError(
                [f"{source}: class ids must be 0..{len(ids) - 1} without gaps, got {ids}"]
            )
        return cls(tuple(class_map[i] for i in ids))
