"""Procedural demo detection data with reference boxes: shapes on photos, deterministic, offline.

``generate_demo_dataset`` writes JPEGs and returns their reference ``Detections``; the
``difficulty`` knob and what it changes are documented in :mod:`.params`.
"""

from __future__ import annotations

from boxloop.local.demo_data.dataset import DemoDataset, generate_demo_dataset, image_file_name
from boxloop.local.demo_data.params import SceneParams
from boxloop.local.demo_data.render import DemoSample, render_demo_sample
from boxloop.local.demo_data.shapes import CLASS_SHAPES, LOOKALIKES

__all__ = [
    "CLASS_SHAPES",
    "LOOKALIKES",
    "DemoDataset",
    "DemoSample",
    "SceneParams",
    "generate_demo_dataset",
    "image_file_name",
    "render_demo_sample",
]
