"""Find the label made for an image: by its source-ref, or by the end of its path.

Labels made elsewhere name their image in many ways: a Ground Truth manifest by the full
``s3://`` URI, COCO by ``file_name`` (often a relative path), VOC by ``<filename>`` (a bare
name), YOLO by the label file's own name. The rule, in one sentence: **a label key matches a
task when the key's path segments are the last segments of the task's source-ref, and the
longest such match wins.** So

* ``s3://bucket/run/images/cat.jpg`` matches itself exactly (all segments), which always wins;
* ``images/cat.jpg`` and ``cat.jpg`` match it by suffix;
* two keys matching with the same number of segments (``a/cat.jpg`` and ``b/cat.jpg`` for the
  task ``cat.jpg``, or the same key twice) are ambiguous: a ``ConfigError`` naming both;
* one key matched by suffix from two different source-refs of the same batch
  (``cat.jpg`` for ``s3://b/x/cat.jpg`` and ``s3://b/y/cat.jpg``) is ambiguous too.

With ``strip_extension`` (YOLO), the task's file extension is ignored, because YOLO label files
are named ``<image stem>.txt``: the key ``labels/cat`` matches ``s3://b/labels/cat.jpg``.
Backslashes in keys count as ``/`` (COCO files written on Windows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from boxloop.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

T = TypeVar("T")


def _segments(path: str) -> tuple[str, ...]:
    """Path segments, without empty or ``.`` ones (``./a//b`` -> ``("a", "b")``)."""
    return tuple(part for part in path.replace("\\", "/").split("/") if part not in ("", "."))


def _strip_extension(segments: tuple[str, ...]) -> tuple[str, ...]:
    if not segments or "." not in segments[-1].lstrip("."):
        return segments
    return (*segments[:-1], segments[-1].rsplit(".", 1)[0])


class LabelLookup(Generic[T]):
    """Labels (or anything) keyed by image path, found by the suffix rule of this module."""

    def __init__(
        self, entries: Iterable[tuple[str, T]], *, source: str, strip_extension: bool = False
    ) -> None:
        """Index ``(key, value)`` pairs; repeated keys are kept and are ambiguous when matched.

        Args:
            entries: The key of each label (a URI, relative path or file name) and the label.
            source: Where the labels came from, for messages.
            strip_extension: Match tasks by their file name without its extension (YOLO).
        """
        self.source = source
        self._strip = strip_extension
        self._by_name: dict[str, list[tuple[tuple[str, ...], int, str, T]]] = {}
        self._count = 0
        for key, value in entries:
            segments = _segments(key)
            if not segments:
                raise ConfigError([f"{source}: a label has an empty image name {key!r}"])
            self._by_name.setdefault(segments[-1], []).append((segments, self._count, key, value))
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def find(self, source_ref: str) -> tuple[str, T] | None:
        """The ``(key, value)`` matching ``source_ref``, or ``None`` when no key matches.

        Raises:
            ConfigError: two keys match equally well.
        """
        match = self._find(source_ref)
        return None if match is None else (match[1], match[2])

    def _find(self, source_ref: str) -> tuple[int, str, T] | None:
        query = _segments(source_ref)
        if self._strip:
            query = _strip_extension(query)
        if not query:
            return None
        best: list[tuple[int, str, T]] = []
        best_length = 0
        for segments, index, key, value in self._by_name.get(query[-1], ()):
            if len(segments) > len(query) or query[-len(segments) :] != segments:
                continue
            if len(segments) > best_length:
                best, best_length = [(index, key, value)], len(segments)
            elif len(segments) == best_length:
                best.append((index, key, value))
        if len(best) > 1:
            keys = ", ".join(repr(key) for _, key, _ in best)
            raise ConfigError(
                [
                    f"{self.source}: {len(best)} labels match {source_ref!r} equally well "
                    f"({keys}); name images by their full source-ref or a longer relative path"
                ]
            )
        return best[0] if best else None

    def find_all(self, source_refs: Sequence[str]) -> Mapping[str, tuple[str, T] | None]:
        """``find`` for every source-ref of a batch, refusing one key for two images.

        Raises:
            ConfigError: a key matches two different source-refs, or two keys match one.
        """
        found: dict[str, tuple[str, T] | None] = {}
        used_by: dict[int, str] = {}
        for source_ref in source_refs:
            match = self._find(source_ref)
            found[source_ref] = None if match is None else (match[1], match[2])
            if match is None:
                continue
            other = used_by.setdefault(match[0], source_ref)
            if other != source_ref:
                raise ConfigError(
                    [
                        f"{self.source}: the label {match[1]!r} matches both {other!r} and "
                        f"{source_ref!r}; name images by their full source-ref or a longer path"
                    ]
                )
        return found
