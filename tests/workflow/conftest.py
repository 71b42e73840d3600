"""Fixtures for the end-to-end tests of the synthesized state machine on moto.

No ``__init__.py`` here on purpose (as in ``tests/stacks``): the helper modules ``e2e_*`` are
imported by name from this folder, which pytest puts on ``sys.path`` as it is no package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from e2e_harness import WorkflowHarness
from e2e_stack import REGION, synth_template
from moto import mock_aws

from boxloop.aws import clients
from boxloop.local import emulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from boxloop.core.detections import Detections

N_IMAGES = 36
DATASET_SEED = 5
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="session")
def synthesized_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The boxloop stack from cdk.json's defaults, synthesized once for the whole folder."""
    return synth_template(outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def demo_images(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Detections]:
    """A small generated dataset: image path -> its reference boxes (pixels)."""
    from boxloop.local.demo_data import generate_demo_dataset

    dataset = generate_demo_dataset(
        tmp_path_factory.mktemp("e2e-data"), n_images=N_IMAGES, n_classes=3, seed=DATASET_SEED
    )
    return dict(dataset.items)


@pytest.fixture(scope="module")
def harness(
    synthesized_template: dict[str, Any],
    demo_images: dict[Path, Detections],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkflowHarness]:
    """Moto with boxloop's patches, the dataset uploaded and the state machine created.

    Module-scoped: the module's executions share one moto (each writes under its own
    ``runs/<name>/``), and the patches are removed when the module ends.
    """
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        clients.clear()
        with mock_aws(config=emulator.MOTO_CONFIG):
            emulator.apply(instant_delays=True)
            try:
                yield WorkflowHarness(
                    synthesized_template,
                    demo_images,
                    tmp_path_factory.mktemp("e2e-work"),
                    patch.setenv,
                )
            finally:
                emulator.remove()
                clients.clear()
