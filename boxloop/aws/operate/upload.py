"""Upload a folder of images to the data bucket, resumably, and write the run's input manifest.

A folder of a few thousand images takes minutes to upload and a laptop's connection drops:
a second ``boxloop aws start --images DIR`` must not pay for the upload again. Each file is
compared with what the bucket already holds under its key (one listing per 1,000 keys, no HEAD
per file): a file of the same size whose MD5 equals the object's ETag (single-part upload,
S3-managed encryption) or the MD5 boxloop stored in the object's metadata at upload (SSE-KMS
ETags are no MD5) is skipped. The manifest is written last, so it never names a missing image.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boxloop.aws.clients import client
from boxloop.aws.s3 import open_for_write
from boxloop.core.errors import BoxloopError
from boxloop.core.image_size import image_files
from boxloop.core.manifests import write_json_line
from boxloop.steps.run import run_hash, safe_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MD5_METADATA = "boxloop-md5"
"""Object metadata key holding the uploaded file's MD5 (hex), to recognise it on a re-run."""
MANIFEST_NAME = "input.manifest"
DEFAULT_WORKERS = 16
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadPlan:
    """The images of a folder and where each one goes.

    Attributes:
        folder: the local folder.
        bucket: the data bucket.
        prefix: ``inputs/<name>/``, the key prefix the run's inputs go under.
        files: ``(local path, key)`` per image, sorted by path.
    """

    folder: Path
    bucket: str
    prefix: str
    files: tuple[tuple[Path, str], ...]

    @property
    def manifest_uri(self) -> str:
        """The input manifest the upload writes."""
        return f"s3://{self.bucket}/{self.prefix}{MANIFEST_NAME}"


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadSummary:
    """What an upload did.

    Attributes:
        uploaded: files sent now.
        skipped: files the bucket already held unchanged.
        bytes_sent: bytes sent now.
        manifest: the input manifest's URI (one ``{"source-ref"}`` line per image).
    """

    uploaded: int
    skipped: int
    bytes_sent: int
    manifest: str


def upload_name(folder: Path) -> str:
    """``<folder name>-<8 hex of its absolute path>``, the folder's place under ``inputs/``.

    The same on every re-run of one folder (so a re-run finds what the last one uploaded),
    different for two folders of one name.
    """
    resolved = folder.resolve()
    return f"{safe_name(resolved.name)}-{run_hash(str(resolved))}"


def plan_upload(folder: Path, *, bucket: str, name: str | None = None) -> UploadPlan:
    """Every image under ``folder`` and its key ``inputs/<name>/images/<relative path>``.

    ``name`` defaults to ``upload_name(folder)``.

    Raises:
        BoxloopError: the folder does not exist or holds no image.
    """
    if not folder.is_dir():
        raise BoxloopError(f"--images {folder}: no such folder")
    paths = image_files(folder)
    prefix = f"inputs/{name or upload_name(folder)}/"
    files = tuple((p, f"{prefix}images/{p.relative_to(folder).as_posix()}") for p in paths)
    return UploadPlan(folder=folder, bucket=bucket, prefix=prefix, files=files)


def file_md5(path: Path) -> str:
    """The MD5 of a file, hex (S3's ETag of a single-part upload without SSE-KMS)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listed(bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """Key -> (size, ETag without quotes) of every object under ``prefix``."""
    found = {}
    paginator = client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (int(item["Size"]), str(item.get("ETag", "")).strip('"'))
    return found


def _already_there(bucket: str, key: str, path: Path, listed: tuple[int, str] | None) -> bool:
    """Whether the object at ``key`` holds exactly ``path``'s bytes."""
    if listed is None or listed[0] != path.stat().st_size:
        return False
    md5 = file_md5(path)
    if listed[1] == md5:
        return True
    # A multipart or SSE-KMS ETag is no MD5: the metadata boxloop wrote at upload decides.
    head = client("s3").head_object(Bucket=bucket, Key=key)
    return head.get("Metadata", {}).get(MD5_METADATA) == md5


def _upload_one(bucket: str, key: str, path: Path) -> int:
    client("s3").upload_file(
        str(path), bucket, key, ExtraArgs={"Metadata": {MD5_METADATA: file_md5(path)}}
    )
    return path.stat().st_size


def upload_images(
    plan: UploadPlan,
    *,
    workers: int = DEFAULT_WORKERS,
    on_file: Callable[[Path, bool], None] | None = None,
) -> UploadSummary:
    """Upload the plan's images that the bucket lacks, in parallel, then write the manifest.

    Args:
        plan: from ``plan_upload``.
        workers: files sent at once.
        on_file: called once per file as it finishes, with ``True`` when it was skipped (a
            progress bar's hook; called from worker threads).

    Returns:
        The counts, and the manifest's URI.
    """
    listed = _listed(plan.bucket, plan.prefix)
    uploaded = skipped = sent = 0

    def one(path: Path, key: str) -> tuple[Path, int | None]:
        if _already_there(plan.bucket, key, path, listed.get(key)):
            return path, None
        return path, _upload_one(plan.bucket, key, path)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(one, path, key) for path, key in plan.files]
        for future in as_completed(futures):
            path, size = future.result()
            if size is None:
                skipped += 1
            else:
                uploaded += 1
                sent += size
            if on_file is not None:
                on_file(path, size is None)
    with open_for_write(plan.manifest_uri) as out:
        for line in manifest_lines(plan):
            write_json_line(out, line)
    return UploadSummary(
        uploaded=uploaded, skipped=skipped, bytes_sent=sent, manifest=plan.manifest_uri
    )


def manifest_lines(plan: UploadPlan) -> Iterator[dict[str, Any]]:
    """One ``{"source-ref": "s3://bucket/key"}`` per image, in the plan's order."""
    for _, key in plan.files:
        yield {"source-ref": f"s3://{plan.bucket}/{key}"}
