"""Docker-free bundling: what a Lambda asset and the processing code contain."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from boxloop.core.errors import ConfigError
from stacks.bundling import (
    LAMBDA_RUNTIME,
    REPO_ROOT,
    CopyBundler,
    lambda_code,
    processing_code_bundler,
)


@pytest.fixture(scope="module")
def lambda_asset(make_app, source_root, tmp_path_factory):
    """The ingest function bundled for real (the only bundling synth in the suite)."""
    outdir = tmp_path_factory.mktemp("bundled")
    app = make_app(bundling=True, outdir=str(outdir))
    stack = cdk.Stack(app, "Bundled")
    lambda_.Function(
        stack,
        "Ingest",
        runtime=LAMBDA_RUNTIME,
        handler="app.lambda_handler",
        code=lambda_code("ingest", root=source_root),
    )
    app.synth()
    template = json.loads((outdir / "Bundled.template.json").read_text())
    (function,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    asset_hash = function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    return outdir / f"asset.{asset_hash}", source_root


def test_lambda_asset_holds_handler_core_and_pinned_dependencies(lambda_asset):
    asset, root = lambda_asset
    assert (asset / "app.py").read_bytes() == (root / "lambdas" / "ingest" / "app.py").read_bytes()
    assert (asset / "boxloop" / "core" / "boxes.py").is_file()
    assert (asset / "boxloop" / "aws" / "s3.py").is_file()
    assert (asset / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (asset / "jmespath" / "__init__.py").is_file()
    assert (asset / "typing_extensions.py").is_file()


def test_lambda_asset_leaves_out_local_engine_and_caches(lambda_asset):
    asset, _ = lambda_asset
    assert not (asset / "boxloop" / "local").exists()
    assert not list(asset.rglob("__pycache__"))
    assert not list(asset.rglob("*.pyc"))


def test_copy_bundler_rejects_package_that_differs_from_its_pin(tmp_path):
    # GIVEN a constraints file that pins another powertools version than the installed one
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("aws-lambda-powertools==0.0.1\njmespath==1.1.0\n")
    bundler = CopyBundler((), packages=("aws_lambda_powertools",), constraints=constraints)
    # WHEN bundling THEN the error names the package and the pin
    with pytest.raises(ConfigError, match=r"aws-lambda-powertools .* pins 0\.0\.1"):
        bundler.try_bundle(str(tmp_path / "out"))


def test_copy_bundler_lays_out_processing_code_beside_the_package(tmp_path):
    # GIVEN a processing folder with its entry point
    processing = tmp_path / "processing"
    processing.mkdir()
    (processing / "postprocess.py").write_text("import boxloop\n")
    (tmp_path / "boxloop").symlink_to(REPO_ROOT / "boxloop")
    _, bundling = processing_code_bundler(root=tmp_path)
    out = tmp_path / "out"
    # WHEN bundled THEN processing/ and the package sit side by side, without boxloop/local
    assert bundling.local.try_bundle(str(out)) is True
    assert (out / "processing" / "postprocess.py").is_file()
    assert (out / "boxloop" / "core" / "config.py").is_file()
    assert not (out / "boxloop" / "local").exists()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        # the lead's files land later; a clear error beats a docker fallback
        (lambda root: lambda_code("ingest", root=root), "lambdas/ingest/app.py not found"),
        (lambda root: processing_code_bundler(root=root), "processing/postprocess.py not found"),
    ],
)
def test_bundling_names_missing_source(tmp_path, build, match):
    with pytest.raises(ConfigError, match=match):
        build(tmp_path)
