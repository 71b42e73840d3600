"""Fixtures for the CDK tests: cdk.json's context, configs, apps and stacks built from the repo.

No ``__init__.py`` here on purpose: as a package this folder would be imported as ``stacks`` and
shadow the real ``stacks`` package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk

from stacks.boxloop_stack import BoxloopStack
from stacks.bundling import REPO_ROOT
from stacks.config import BoxloopConfig
from stacks.functions import FUNCTION_IDS
from stacks.workflow import ASL_PATH

if TYPE_CHECKING:
    from collections.abc import Callable

NO_BUNDLING = {"aws:cdk:bundling-stacks": []}
# Files other parts of the project write; the stack deploys them and cannot synth without them.
STACK_SOURCES = (
    ASL_PATH,
    Path("processing") / "postprocess.py",
    *(Path("lambdas") / folder / "app.py" for folder in FUNCTION_IDS),
)


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """The ``context`` block of cdk.json: boxloop defaults and CDK feature flags."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def make_config(cdk_context: dict[str, Any]) -> Callable[..., BoxloopConfig]:
    """A config from cdk.json's context plus overrides, as ``-c key=value`` would give it.

    ``environ`` stands for what the CDK CLI exports (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION).
    """

    def make(*, environ: dict[str, str] | None = None, **overrides: Any) -> BoxloopConfig:
        return BoxloopConfig.from_context({**cdk_context, **overrides}, environ=environ or {})

    return make


@pytest.fixture(scope="session")
def make_app(cdk_context: dict[str, Any]) -> Callable[..., cdk.App]:
    """An App with cdk.json's feature flags, bundling skipped unless asked for."""

    def make(*, bundling: bool = False, outdir: str | None = None) -> cdk.App:
        return cdk.App(context={**cdk_context, **({} if bundling else NO_BUNDLING)}, outdir=outdir)

    return make


def missing_files(paths: tuple[Path, ...], root: Path = REPO_ROOT) -> list[str]:
    """The paths (relative to ``root``) that are not files there."""
    return [str(path) for path in paths if not (root / path).is_file()]


@pytest.fixture(scope="session")
def source_root() -> Path:
    """The repository root; fails (never skips) when a file the stack deploys is missing."""
    missing = missing_files(STACK_SOURCES)
    if missing:
        pytest.fail(
            f"the stack deploys files that are missing: {', '.join(missing)} (they are part "
            "of the repository: `git restore <file>` brings one back)",
            pytrace=False,
        )
    return REPO_ROOT


@pytest.fixture(scope="session")
def make_stack(make_app: Callable[..., cdk.App], source_root: Path) -> Callable[..., BoxloopStack]:
    """The boxloop stack for a config, on a fresh App unless one is given."""

    def make(config: BoxloopConfig, *, app: cdk.App | None = None) -> BoxloopStack:
        return BoxloopStack(app or make_app(), "Boxloop", config=config, root=source_root)

    return make
