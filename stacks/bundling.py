"""Docker-free asset bundling: Lambda and processing code assembled by copying files at synth."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from boxloop.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
# Pure-Python distributions (import name -> distribution name) that every function bundles. boto3
# is left out on purpose: the Lambda runtime provides it. Versions must equal the pins in
# requirements/constraints.txt, so a bundle is the same wherever it is built.
LAMBDA_DEPENDENCIES: dict[str, str] = {
    "aws_lambda_powertools": "aws-lambda-powertools",
    "jmespath": "jmespath",
    "typing_extensions": "typing_extensions",
}
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")


@jsii.implements(cdk.ILocalBundling)
class CopyBundler:
    """Bundles by copying: ``(source, destination inside the asset)`` pairs plus pinned packages.

    Runs in the synth process, so it needs neither docker nor network; what it copies is exactly
    the working tree and the installed, pinned dependencies, hence the asset hash (computed on the
    output) changes whenever any of them does.
    """

    def __init__(
        self,
        copies: tuple[tuple[Path, str], ...],
        *,
        packages: tuple[str, ...] = (),
        constraints: Path = REPO_ROOT / "requirements" / "constraints.txt",
    ) -> None:
        self.copies = copies
        self.packages = packages
        self.constraints = constraints

    def try_bundle(self, output_dir: str, options: Any = None, **_kwargs: Any) -> bool:
        """Copy everything into ``output_dir``; True tells CDK not to fall back to docker.

        jsii passes the bundling options as one positional struct (the generated stub says
        keyword-only); neither form is used.

        Raises:
            ConfigError: when a source is missing or an installed package differs from its pin.
        """
        out = Path(output_dir)
        for source, destination in self.copies:
            _copy(source, out / destination)
        pins = _read_pins(self.constraints) if self.packages else {}
        for module in self.packages:
            installed = _installed_path(module, pins)
            _copy(installed, out / installed.name)
        return True


def lambda_code(name: str, *, root: Path = REPO_ROOT) -> lambda_.Code:
    """The asset of ``lambdas/<name>``: its ``app.py``, the boxloop package and pinned deps.

    ``boxloop/local`` (the offline engine, with torch and moto imports) is never bundled.

    Raises:
        ConfigError: when ``lambdas/<name>/app.py`` does not exist.
    """
    handler_dir = root / "lambdas" / name
    _require(handler_dir / "app.py", f"the handler of the {name!r} Lambda")
    bundler = CopyBundler(
        ((handler_dir / "app.py", "app.py"), (root / "boxloop", "boxloop")),
        packages=tuple(LAMBDA_DEPENDENCIES),
    )
    return lambda_.Code.from_asset(
        str(handler_dir),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
        bundling=cdk.BundlingOptions(image=LAMBDA_RUNTIME.bundling_image, local=bundler),
    )


def processing_code_bundler(*, root: Path = REPO_ROOT) -> tuple[Path, cdk.BundlingOptions]:
    """Source folder and bundling of the processing code: ``processing/`` and ``boxloop/``.

    Both keep their repository layout, side by side: the job runs
    ``<code>/processing/postprocess.py``, which puts ``<code>`` on ``sys.path``, so ``import
    boxloop`` works with the container's own Python and no pip install.

    Raises:
        ConfigError: when ``processing/postprocess.py`` does not exist.
    """
    processing_dir = root / "processing"
    _require(processing_dir / "postprocess.py", "the processing job's entry point")
    bundler = CopyBundler(((processing_dir, "processing"), (root / "boxloop", "boxloop")))
    return processing_dir, cdk.BundlingOptions(image=LAMBDA_RUNTIME.bundling_image, local=bundler)


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise ConfigError([f"{path} not found: it is {what}, which the stack deploys"])


def _copy(source: Path, destination: Path) -> None:
    """Copy a file or a tree (without caches or ``boxloop/local``) to exactly ``destination``."""
    if source.is_dir():
        ignore_local = source.name == "boxloop"

        def ignore(directory: str, names: list[str]) -> set[str]:
            ignored = set(_IGNORED(directory, names))
            if ignore_local and Path(directory) == source:
                ignored.add("local")
            return ignored

        shutil.copytree(source, destination, ignore=ignore, dirs_exist_ok=True)
    elif source.is_file():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    else:
        raise ConfigError([f"{source} not found: the bundle needs it"])


def _read_pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[_normalize(name)] = version.strip()
    return pins


def _installed_path(module: str, pins: dict[str, str]) -> Path:
    """Where ``module`` is installed, after checking its version against the pin."""
    distribution = LAMBDA_DEPENDENCIES[module]
    installed = importlib.metadata.version(distribution)
    pinned = pins.get(_normalize(distribution))
    if installed != pinned:
        raise ConfigError(
            [
                f"{distribution} {installed} is installed but requirements/constraints.txt pins "
                f"{pinned}: run ./setup.sh --dev before synth so Lambda bundles are reproducible"
            ]
        )
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ConfigError([f"{module} is not importable; run ./setup.sh --dev"])
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")
