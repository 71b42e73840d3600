"""Batch inference in the built-in Object Detection algorithm's output format.

SageMaker's batch transform writes, per image, ``{"prediction": [[class_id, score, xmin, ymin,
xmax, ymax], ...]}`` with coordinates normalized by the original image's width and height.
:func:`predict_images` yields exactly those rows, so the post-processing step cannot tell the
local detector from the managed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from boxloop.local.detector.artifact import load_model
from boxloop.local.detector.backbone import TAP_STRIDES
from boxloop.local.detector.coding import decode
from boxloop.local.detector.data import letterbox, load_rgb
from boxloop.local.detector.nms import batched_nms
from boxloop.local.detector.runtime import torch_threads

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from boxloop.core.boxes import ImageWH
    from boxloop.local.detector.model import Detector, HeadOutput

NMS_IOU = 0.45
"""The built-in algorithm's default ``nms_threshold``."""
CANDIDATES_PER_IMAGE = 1000
"""Best-scoring (point, class) pairs that go into NMS, bounding its cost."""


@dataclass(frozen=True, slots=True)
class PixelPredictions:
    """The detections of one image in pixels of the original image.

    Attributes:
        image_wh: ``(width, height)`` of the original image.
        boxes: ``(N, 4)`` xyxy pixels, clipped to the image, each with positive area.
        scores: ``(N,)`` scores in [0, 1], descending.
        class_ids: ``(N,)`` int64 class ids.
    """

    image_wh: ImageWH
    boxes: torch.Tensor
    scores: torch.Tensor
    class_ids: torch.Tensor


def postprocess(
    output: HeadOutput,
    valid_wh: list[tuple[float, float]],
    *,
    score_floor: float,
    max_detections: int,
    nms_iou: float = NMS_IOU,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Scores, decoding, clipping and class-aware NMS for a batch.

    The score of a (point, class) is ``sqrt(sigmoid(class) * sigmoid(centerness))`` as in FCOS,
    which ranks off-centre points down and stays in [0, 1].

    Args:
        output: Raw network output for ``B`` inputs.
        valid_wh: Per input, the width and height (input pixels) covered by the image; boxes are
            clipped to it, so nothing is reported in the letterbox padding.
        score_floor: Detections scoring below this are dropped.
        max_detections: At most this many detections per image, best first.
        nms_iou: IoU above which a same-class box is suppressed by a better one.

    Returns:
        Per input: ``(N, 4)`` xyxy input-pixel boxes, ``(N,)`` scores and ``(N,)`` class ids.
    """
    scores = torch.sqrt(
        torch.sigmoid(output.class_logits) * torch.sigmoid(output.centerness_logits)[..., None]
    )
    num_classes = scores.shape[-1]
    results = []
    for index, (width, height) in enumerate(valid_wh):
        flat = scores[index].reshape(-1)
        candidates = torch.nonzero(flat >= score_floor).squeeze(1)
        if candidates.numel() > CANDIDATES_PER_IMAGE:
            candidates = candidates[flat[candidates].topk(CANDIDATES_PER_IMAGE).indices]
        point_index = candidates // num_classes
        class_ids = candidates % num_classes
        boxes = decode(
            output.points[point_index],
            output.point_strides[point_index],
            output.box_regression[index, point_index],
        )
        limits = torch.tensor([width, height, width, height], dtype=boxes.dtype)
        boxes = torch.minimum(boxes.clamp(min=0), limits)
        has_area = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, class_ids, kept_scores = (
            boxes[has_area],
            class_ids[has_area],
            flat[candidates][has_area],
        )
        keep = batched_nms(boxes, kept_scores, class_ids, nms_iou)[:max_detections]
        results.append((boxes[keep], kept_scores[keep], class_ids[keep]))
    return results


def _unflip(values: torch.Tensor, level_hw: list[tuple[int, int]]) -> torch.Tensor:
    """Mirror per-point outputs (levels concatenated, each row-major) back left to right."""
    parts, start = [], 0
    for height, width in level_hw:
        level = values[:, start : start + height * width]
        start += height * width
        shape = level.shape
        parts.append(level.reshape(shape[0], height, width, *shape[2:]).flip(2).reshape(shape))
    return torch.cat(parts, 1)


def flip_averaged(model: Detector, images: torch.Tensor) -> HeadOutput:
    """Head outputs averaged over a square batch and its mirror image (test-time flip).

    The feature grids are symmetric (sides are multiples of the strides), so the mirrored
    pass's maps flip back onto the same points, its left and right distances swapped. A score
    that must hold for both views is steadier: on the demo's last round model, the share of
    open images ranked right at 92 % rose from 82 to 87 %, for twice the forward passes.
    """
    plain = model(images)
    mirrored = model(images.flip(-1))
    side = images.shape[-1]
    level_hw = [(side // stride, side // stride) for stride in TAP_STRIDES]
    regression = _unflip(mirrored.box_regression, level_hw)[..., [2, 1, 0, 3]]
    return plain._replace(
        class_logits=(plain.class_logits + _unflip(mirrored.class_logits, level_hw)) / 2,
        box_regression=(plain.box_regression + regression) / 2,
        centerness_logits=(plain.centerness_logits + _unflip(mirrored.centerness_logits, level_hw))
        / 2,
    )


def _batches(items: Iterable[Path], size: int) -> Iterator[list[Path]]:
    batch: list[Path] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_pixel_predictions(
    model: Detector,
    image_size: int,
    image_paths: Iterable[Path],
    *,
    score_floor: float = 0.05,
    max_detections: int = 100,
    batch_size: int = 8,
    nms_iou: float = NMS_IOU,
    num_threads: int | None = None,
    flip_test: bool = False,
) -> Iterator[PixelPredictions]:
    """Detections per image, in input order, in pixels of each original image.

    Args:
        model: A detector (switched to eval mode here).
        image_size: The square input side the model was trained at.
        image_paths: Image files of any size and aspect ratio.
        score_floor: Minimum score reported.
        max_detections: Most detections per image.
        batch_size: Images per forward pass (memory vs speed; results do not depend on it
            beyond float rounding).
        nms_iou: Class-aware NMS threshold.
        num_threads: Torch threads during each forward pass (default: every CPU).
        flip_test: Average each image's outputs with its mirror image's (see
            :func:`flip_averaged`).

    Yields:
        One :class:`PixelPredictions` per path.
    """
    model.eval()
    for paths in _batches(image_paths, max(1, batch_size)):
        decoded = [load_rgb(path, fit_side=image_size) for path in paths]
        sizes = [wh for _, wh in decoded]
        inputs, scales = zip(
            *(letterbox(image, image_size, wh) for image, wh in decoded), strict=True
        )
        valid = [(w * s, h * s) for (w, h), s in zip(sizes, scales, strict=True)]
        with torch_threads(num_threads), torch.inference_mode():
            batch_input = torch.stack(inputs)
            output = flip_averaged(model, batch_input) if flip_test else model(batch_input)
            batch = postprocess(
                output,
                valid,
                score_floor=score_floor,
                max_detections=max_detections,
                nms_iou=nms_iou,
            )
        for wh, scale, (boxes, scores, class_ids) in zip(sizes, scales, batch, strict=True):
            limits = torch.tensor([wh[0], wh[1], wh[0], wh[1]], dtype=boxes.dtype)
            pixel = torch.minimum((boxes / scale).clamp(min=0), limits)
            yield PixelPredictions(wh, pixel, scores, class_ids)


def predict_images(
    model_path: Path,
    image_paths: Iterable[Path],
    *,
    score_floor: float = 0.05,
    max_detections: int = 100,
    batch_size: int = 8,
    nms_iou: float = NMS_IOU,
    num_threads: int | None = None,
    flip_test: bool = False,
) -> Iterator[list[list[float]]]:
    """Run a saved detector over images, yielding the built-in algorithm's rows per image.

    Args:
        model_path: A file written by ``train_detector`` (or unpacked from ``model.tar.gz``).
        image_paths: Image files of any size and aspect ratio, read lazily in batches.
        score_floor: Minimum score reported.
        max_detections: Most rows per image.
        batch_size: Images per forward pass.
        nms_iou: Class-aware NMS threshold.
        num_threads: Torch threads (default: every CPU).
        flip_test: As for :func:`iter_pixel_predictions`.

    Yields:
        Per image, in input order, rows ``[class_id, score, xmin, ymin, xmax, ymax]`` as floats:
        the 0-based class id, the score in [0, 1] (rows by descending score), and the corners
        normalized by the original width (x) and height (y), within [0, 1]. An image with no
        detection gives an empty list.

    Raises:
        ModelArtifactError: ``model_path`` is not a readable detector file.
    """
    model, info = load_model(model_path)
    for found in iter_pixel_predictions(
        model,
        info.image_size,
        image_paths,
        score_floor=score_floor,
        max_detections=max_detections,
        batch_size=batch_size,
        nms_iou=nms_iou,
        num_threads=num_threads,
        flip_test=flip_test,
    ):
        width, height = found.image_wh
        normalized = (found.boxes / torch.tensor([width, height, width, height])).clamp(0.0, 1.0)
        yield [
            [float(class_id), float(score), *(float(v) for v in box)]
            for class_id, score, box in zip(
                found.class_ids.tolist(), found.scores.tolist(), normalized.tolist(), strict=True
            )
        ]
