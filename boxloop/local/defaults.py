"""The demo's size and training budget, importable without moto or torch (the CLI's help)."""

from __future__ import annotations

DEMO_IMAGES = 1000
"""Images in the default demo: the seed and validation labels are a fixed cost, so a larger
dataset is what lets the machine label most of it; 1000 finish in about 10 minutes on 2 cores."""

DEMO_IMAGE_STEPS = 1024
"""Local detector training budget per iteration in the demo, in images seen (the last model,
which alone auto-labels, trains ``last_model_epochs_factor`` times as long)."""
