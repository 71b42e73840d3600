"""``boxloop review OUT``: a local run's labels in the labeling app, and corrections to them.

`LocalReview` is the `boxloop.labeling.review.ReviewCatalog` of a local run's output folder.
The first review keeps the run's own output manifest as ``OUT/labeling/output.before-review
.manifest``; the output manifest is from then on that file with every journaled correction
(``OUT/labeling/review.jsonl``) applied, rewritten whole (to a temporary file, then renamed)
after each correction, so it is always either the old or the new version. A correction is a
human label (job name ``labeling-job/review``); a corrected auto-label is marked ``audit`` in
its provenance and counted in ``report.json``'s ``review`` block: how many auto-labels people
checked here and how many they found wrong (image exact match), an audit of the threshold.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.s3 import read_image_size
from boxloop.core.calibration import image_score
from boxloop.core.errors import BoxloopError
from boxloop.core.image_size import ImageHeaderError
from boxloop.core.manifests import write_json_line
from boxloop.core.records import ID_KEY, record_to_json
from boxloop.labeling.output import answer_detections, ground_truth_now, label_of
from boxloop.labeling.review import REVIEW_JOB, ReviewItem
from boxloop.steps.run import iter_records

if TYPE_CHECKING:
    from boxloop.core.records import Record
    from boxloop.labeling.contract import Answer
    from boxloop.labeling.store import JournalStore

OUTPUT_MANIFEST = "output.manifest"
PRISTINE = "output.before-review.manifest"
REVIEW_JOURNAL = "review.jsonl"
DEFAULT_ATTRIBUTE = "boxes"


def classes_of(out_dir: Path) -> dict[int, str]:
    """The run's classes, from the COCO export every local run writes (``coco.json``).

    Raises:
        BoxloopError: no ``coco.json`` (name the classes with ``--labels``).
    """
    coco = out_dir / "coco.json"
    if not coco.is_file():
        raise BoxloopError(
            f"{coco} is missing, so the run's classes are unknown; pass --labels classes.json"
        )
    categories = json.loads(coco.read_text(encoding="utf-8")).get("categories") or []
    return {int(c["id"]): str(c["name"]) for c in categories}


def _label_attribute(manifest: Path) -> str:
    from boxloop.local.app import label_attribute_of

    return label_attribute_of(manifest) or DEFAULT_ATTRIBUTE


def _latest(answers: list[Answer]) -> Answer | None:
    return max(answers, key=lambda a: a.at) if answers else None


class LocalReview:
    """The review catalog of a local run's output folder (see the module docstring).

    When the review ends, :meth:`refresh_report_page` rewrites ``report.html`` (and the
    accuracy against the reference, when the run had one) from the corrected labels: once, not
    after every correction, because the page's plots take seconds to draw.
    """

    def __init__(
        self,
        out_dir: Path,
        store: JournalStore,
        *,
        classes: dict[int, str] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        """Open ``out_dir`` for review; ``store`` journals corrections (``review.jsonl``).

        Raises:
            BoxloopError: ``out_dir`` holds no ``output.manifest``.
        """
        self.out_dir = out_dir
        self.manifest = out_dir / OUTPUT_MANIFEST
        self.pristine = out_dir / "labeling" / PRISTINE
        if not self.pristine.is_file():
            if not self.manifest.is_file():
                raise BoxloopError(f"{self.manifest} is missing: review a finished run's folder")
            self.pristine.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.manifest, self.pristine)
        self.store = store
        self.name = out_dir.name or "review"
        self.classes = classes if classes is not None else classes_of(out_dir)
        self.base_dir = base_dir
        self.attr = _label_attribute(self.pristine)
        self._lock = threading.Lock()
        self._items: dict[str, ReviewItem] = {}
        self._corrections = 0
        self.rewrite()  # journaled corrections from an interrupted review are applied at once

    # -- the catalog --------------------------------------------------------------------------

    def items(self) -> list[ReviewItem]:
        """Every image, as labeled now."""
        return list(self._items.values())

    def item(self, item_id: str) -> ReviewItem | None:
        """One image, or ``None``."""
        return self._items.get(item_id)

    def apply(self, answer: Answer) -> None:
        """Rewrite the output (the correction is journaled already)."""
        del answer  # the rewrite takes every journaled correction, this one included
        self.rewrite()

    # -- rewriting ----------------------------------------------------------------------------

    def _image_path(self, source_ref: str) -> str:
        if self.base_dir is not None and not Path(source_ref).is_absolute():
            return str(self.base_dir / source_ref)
        return source_ref

    def _item(self, record: Record) -> ReviewItem | None:
        label = record.label
        wh = label.detections.image_wh if label else record.provenance.image_wh
        image = self._image_path(record.source_ref)
        if wh is None:
            try:
                wh = read_image_size(image)
            except (ImageHeaderError, OSError):
                return None  # an image that cannot be read cannot be reviewed
        boxes = ()
        if label is not None:
            boxes = tuple(
                {
                    "class_id": b.class_id,
                    "left": b.x_min,
                    "top": b.y_min,
                    "width": b.x_max - b.x_min,
                    "height": b.y_max - b.y_min,
                    **({"score": b.score} if b.score is not None else {}),
                }
                for b in label.detections.boxes
            )
        kind = "left" if label is None else "human" if label.human_annotated else "auto"
        return ReviewItem(
            item_id=record.id,
            source_ref=record.source_ref,
            image=image,
            width=int(wh[0]),
            height=int(wh[1]),
            kind=kind,
            confidence=record.provenance.confidence,
            boxes=boxes,
        )

    def _corrected(self, record: Record, answer: Answer, audit: dict[str, int]) -> Record:
        label = label_of(
            [answer],
            job_name=REVIEW_JOB,
            class_map=self.classes,
            creation_date=ground_truth_now(),
        )
        was = record.label
        audit["corrections"] += 1
        if was is None:
            audit["left_labeled"] += 1
            return record.replace(label=label)
        if was.human_annotated:
            audit["human_corrected"] += 1
            return record.replace(label=label)
        audit["auto_reviewed"] += 1
        truth = answer_detections(answer)
        predicted = type(truth)(truth.image_id, was.detections.image_wh, was.detections.boxes)
        if was.detections.image_wh != truth.image_wh or not image_score(
            predicted, truth, "exact_match"
        ):
            audit["auto_wrong"] += 1
        return record.replace(label=label).with_provenance(audit=True)

    def rewrite(self) -> None:
        """The output manifest = the pristine one + every correction; items and report follow."""
        with self._lock:
            audit = dict.fromkeys(
                ("corrections", "auto_reviewed", "auto_wrong", "human_corrected", "left_labeled"),
                0,
            )
            counts = {"human": 0, "auto": 0, "unlabeled": 0}
            items: dict[str, ReviewItem] = {}
            tmp = self.manifest.with_name(self.manifest.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as out:
                for record in iter_records(str(self.pristine), self.attr):
                    answer = _latest(self.store.answers(record.id))
                    if answer is not None:
                        record = self._corrected(record, answer, audit)
                    label = record.label
                    kind = (
                        "unlabeled"
                        if label is None
                        else ("human" if label.human_annotated else "auto")
                    )
                    counts[kind] += 1
                    line = record_to_json(record, self.attr)
                    line.pop(ID_KEY, None)  # as the run wrote it: derived from source-ref
                    write_json_line(out, line)
                    item = self._item(record)
                    if item is not None:
                        items[item.item_id] = item
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.manifest)
            self._items = items
            self._corrections = audit["corrections"]
            if audit["corrections"]:
                self._update_report(audit, counts)
                self._update_coco()

    def refresh_report_page(self) -> Path | None:
        """Rewrite ``report.html`` from the corrected labels; returns it (``None``: unchanged).

        Nothing is rewritten without a correction or without the run's page. The accuracy
        against the reference is measured again (and ``reference_eval.json`` rewritten) when the
        run measured it and its reference manifest is still where it was; otherwise the page
        leaves it out rather than show the figures of labels that have changed since.
        """
        from boxloop.local.app import REFERENCE_EVAL, REPORT_HTML, write_report_page

        page, report_json = self.out_dir / REPORT_HTML, self.out_dir / "report.json"
        if not self._corrections or not page.is_file() or not report_json.is_file():
            return None
        with self._lock:
            reference, reference_attribute = None, None
            saved = self.out_dir / REFERENCE_EVAL
            if saved.is_file():
                before = json.loads(saved.read_text(encoding="utf-8"))
                source = Path(str((before.get("reference") or {}).get("source") or ""))
                if source.is_file():
                    reference, reference_attribute = source, before.get("reference_attribute")
            report = json.loads(report_json.read_text(encoding="utf-8"))
            return write_report_page(
                self.out_dir,
                report,
                self.manifest,
                self.attr,
                base_dir=self.base_dir or Path.cwd(),
                reference=reference,
                reference_attribute=reference_attribute,
            )[0]

    def _update_coco(self) -> None:
        """Re-export ``coco.json`` (when the run wrote one) from the corrected manifest."""
        coco = self.out_dir / "coco.json"
        if coco.is_file():
            from boxloop.local.export import export_coco

            export_coco(self.manifest, coco, self.attr, self.classes)

    def _update_report(self, audit: dict[str, int], counts: dict[str, int]) -> None:
        path = self.out_dir / "report.json"
        if not path.is_file():
            return
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        reviewed = audit["auto_reviewed"]
        report["review"] = {
            **audit,
            "auto_exact_share": None
            if not reviewed
            else (reviewed - audit["auto_wrong"]) / reviewed,
        }
        report["counts"] = {**(report.get("counts") or {}), **counts}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        tmp.replace(path)
