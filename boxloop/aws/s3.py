"""Streaming line I/O for manifests on S3 or local disk, so no manifest is ever held in memory."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from boxloop.aws.clients import client

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

S3_SCHEME = "s3://"
_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class S3Uri:
    """A parsed ``s3://bucket/key`` URI."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Split ``s3://bucket/key``; raises ``ValueError`` naming the URI when it is not one."""
        if not uri.startswith(S3_SCHEME) or "/" not in uri[len(S3_SCHEME) :]:
            raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
        bucket, key = uri[len(S3_SCHEME) :].split("/", 1)
        if not bucket:
            raise ValueError(f"S3 URI has no bucket: {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        """A key below this one (``/`` inserted as needed)."""
        key = self.key.rstrip("/")
        for part in parts:
            key = f"{key}/{part.strip('/')}" if key else part.strip("/")
        return S3Uri(self.bucket, key)


def is_s3_uri(location: str) -> bool:
    """True for ``s3://`` locations, false for local paths."""
    return location.startswith(S3_SCHEME)


def iter_lines(location: str) -> Iterator[bytes]:
    """The lines of an S3 object or local file as bytes, streamed (line endings stripped)."""
    if not is_s3_uri(location):
        with Path(location).open("rb") as f:
            for line in f:
                yield line.rstrip(b"\r\n")
        return
    uri = S3Uri.parse(location)
    body = client("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
    pending = b""
    for chunk in body.iter_chunks(_CHUNK_BYTES):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


@contextlib.contextmanager
def open_for_write(location: str) -> Iterator[IO[str]]:
    """A text file to write lines into; on S3 it is spooled to disk then uploaded on close.

    The object appears only when the block exits without an error, so a failed step never
    leaves a half-written manifest behind for the next step to read.
    """
    if not is_s3_uri(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        with tmp.open("w", encoding="utf-8") as f:
            yield f
        tmp.replace(path)
        return
    uri = S3Uri.parse(location)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        yield spool
        spool.flush()
        spool.buffer.seek(0)
        client("s3").upload_fileobj(spool.buffer, uri.bucket, uri.key)


def read_text(location: str) -> str:
    """A small text object (a config or label map), S3 or local."""
    if not is_s3_uri(location):
        return Path(location).read_text(encoding="utf-8")
    uri = S3Uri.parse(location)
    return client("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode("utf-8")


def object_size(location: str) -> int:
    """The size in bytes of an S3 object (one HEAD request) or local file."""
    if not is_s3_uri(location):
        return Path(location).stat().st_size
    uri = S3Uri.parse(location)
    return int(client("s3").head_object(Bucket=uri.bucket, Key=uri.key)["ContentLength"])


def write_text(location: str, text: str) -> None:
    """Write a small text object (a report or config), S3 or local."""
    with open_for_write(location) as f:
        f.write(text)


@dataclass(frozen=True, slots=True)
class ImageBytes:
    """The start of an image file, its size, and a way to read more of it."""

    head: bytes
    size_bytes: int
    read_at: Callable[[int, int], bytes]


_UNREADABLE_CODES = frozenset(
    {"NoSuchKey", "404", "NotFound", "AccessDenied", "403", "InvalidRange", "416", "NoSuchBucket"}
)


def image_reader(max_connections: int | None = 10) -> Callable[[str], ImageBytes]:
    """A function reading the first ``HEADER_BYTES`` of an image and its size, for many threads.

    One S3 client with a connection pool as large as the threads that share it (boto3's
    default of 10 makes more threads queue and reconnect); ``None`` uses the shared cached
    client instead (``boxloop.aws.clients``). Each call is one ranged GET: the
    object's size comes from its ``Content-Range``, so no HEAD is needed.

    Raises (from the returned function):
        ImageHeaderError: when the object or file cannot be read at all (missing, access
            denied, empty): that image is unusable, not the run. Other S3 errors (throttling,
            5xx) propagate, so they are retried rather than misreported as bad images.
    """
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from boxloop.core.image_size import HEADER_BYTES, ImageHeaderError

    s3: Any = None
    lock = threading.Lock()

    def ranged(uri: S3Uri, offset: int, length: int) -> dict[str, Any]:
        try:
            return s3.get_object(
                Bucket=uri.bucket, Key=uri.key, Range=f"bytes={offset}-{offset + length - 1}"
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _UNREADABLE_CODES:
                raise ImageHeaderError(f"{uri}: {code}") from None
            raise

    def read(location: str) -> ImageBytes:
        nonlocal s3
        if not is_s3_uri(location):
            path = Path(location)
            try:
                with path.open("rb") as f:
                    head = f.read(HEADER_BYTES)
                size = path.stat().st_size
            except OSError as exc:
                raise ImageHeaderError(f"{location}: {exc.strerror}") from None

            def read_local(offset: int, length: int) -> bytes:
                with path.open("rb") as f:
                    f.seek(offset)
                    return f.read(length)

            return ImageBytes(head, size, read_local)
        with lock:
            if s3 is None:
                s3 = (
                    client("s3")
                    if max_connections is None
                    else client("s3", config=Config(max_pool_connections=max_connections))
                )
        uri = S3Uri.parse(location)
        response = ranged(uri, 0, HEADER_BYTES)
        head = response["Body"].read()
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        size = int(total) if total.isdigit() else int(response.get("ContentLength", len(head)))
        return ImageBytes(
            head, size, lambda offset, length: ranged(uri, offset, length)["Body"].read()
        )

    return read


def read_image_size(location: str) -> tuple[int, int]:
    """An image's ``(width, height)`` from its header: a ranged GET, never a full download.

    Raises:
        ImageHeaderError: when the header cannot be read (not an image, cut short, missing,
            access denied): the caller marks that image, not the run.
    """
    from boxloop.core.image_size import read_image_header

    image = image_reader(max_connections=None)(location)
    return read_image_header(image.head, image.read_at).image_wh


def try_read_text(location: str) -> str | None:
    """Like ``read_text``, but ``None`` when the object or file does not exist."""
    from botocore.exceptions import ClientError

    try:
        return read_text(location)
    except FileNotFoundError:
        return None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def download_file(location: str, dest: Path) -> Path:
    """Copy one object (or local file) to ``dest``; parents are created."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not is_s3_uri(location):
        dest.write_bytes(Path(location).read_bytes())
        return dest
    uri = S3Uri.parse(location)
    client("s3").download_file(uri.bucket, uri.key, str(dest))
    return dest


def upload_file(src: Path, location: str) -> None:
    """Copy a local file to an S3 URI (or a local path)."""
    if not is_s3_uri(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_bytes(src.read_bytes())
        return
    uri = S3Uri.parse(location)
    client("s3").upload_file(str(src), uri.bucket, uri.key)


def iter_keys(location: str) -> Iterator[str]:
    """Every object key under an S3 prefix, paginated (no 1,000-key cap)."""
    uri = S3Uri.parse(location)
    paginator = client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key):
        for item in page.get("Contents", []):
            yield item["Key"]


def download_prefix(location: str, dest: Path) -> int:
    """Copy every object under an S3 prefix into ``dest``, keeping relative keys; returns count.

    A URI naming one object (SageMaker's S3Prefix also matches a single key) lands as
    ``dest/<basename>``, as a Processing job's S3 input does.
    """
    uri = S3Uri.parse(location)
    count = 0
    for key in iter_keys(location):
        relative = key[len(uri.key) :].lstrip("/") or key.rsplit("/", 1)[-1]
        download_file(f"{S3_SCHEME}{uri.bucket}/{key}", dest / relative)
        count += 1
    return count


def upload_dir(src: Path, location: str) -> int:
    """Copy every file under ``src`` to an S3 prefix, keeping relative paths; returns count."""
    base = S3Uri.parse(location) if is_s3_uri(location) else None
    count = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        relative = path.relative_to(src).as_posix()
        target = str(base.join(relative)) if base else str(Path(location) / relative)
        upload_file(path, target)
        count += 1
    return count
