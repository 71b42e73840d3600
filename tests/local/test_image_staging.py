"""Staging local images into the emulated bucket: where they lie must not change the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from boxloop.core.manifests import record_id
from boxloop.local.engine import LocalRunError, local_aws, upload_images


def _images(root: Path) -> list[dict[str, str]]:
    lines = []
    for name in ("a.jpg", "sub/b.jpg", "sub/deeper/c.jpg"):
        path = root / "dataset" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8" + name.encode())
        lines.append({"source-ref": str(path)})
    return lines


def test_same_images_in_other_folders_get_the_same_uris_and_ids(tmp_path):
    with local_aws():
        first = upload_images(_images(tmp_path / "one"), tmp_path)
        second = upload_images(_images(tmp_path / "two" / "nested"), tmp_path)
    assert sorted(first) == sorted(second)
    assert sorted(first) == [
        "s3://boxloop-local/images/a.jpg",
        "s3://boxloop-local/images/sub/b.jpg",
        "s3://boxloop-local/images/sub/deeper/c.jpg",
    ]
    assert {record_id(uri) for uri in first} == {record_id(uri) for uri in second}
    assert first["s3://boxloop-local/images/sub/b.jpg"] == str(tmp_path / "one/dataset/sub/b.jpg")


def test_relative_source_refs_resolve_against_the_base(tmp_path):
    _images(tmp_path)
    with local_aws():
        mapping = upload_images([{"source-ref": "dataset/sub/b.jpg"}], tmp_path)
    assert mapping == {"s3://boxloop-local/images/b.jpg": "dataset/sub/b.jpg"}


def test_a_missing_image_is_named(tmp_path):
    lines = [*_images(tmp_path), {"source-ref": "dataset/gone.jpg"}]
    with local_aws(), pytest.raises(LocalRunError, match=r"'dataset/gone\.jpg': no such image"):
        upload_images(lines, tmp_path)
