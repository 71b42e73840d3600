"""Image format, size and channels from the first bytes of a file, without decoding the image.

Ingest checks every image the batch transform will read (the built-in Object Detection
algorithm takes 3-channel JPEG or PNG only, and one image it cannot take fails the whole job),
and post-processing needs the size of every predicted image to turn normalized boxes into
pixels; reading a few kilobytes of header per image is what keeps both cheap at scale.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from boxloop.core.errors import BoxloopError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    ReadAt = Callable[[int, int], bytes]
    """``(offset, length) -> bytes`` of the same file (fewer at its end)."""

HEADER_BYTES = 64 * 1024
"""Enough for the SOF marker of JPEGs with large EXIF blocks in the usual case."""
MAX_EXTRA_READS = 4
"""Further reads a JPEG whose frame header lies past ``HEADER_BYTES`` may cost (huge EXIF or
ICC blocks); each skips whole segments by their length, so four reach far."""
TAIL_BYTES = 1024
"""How much of a file's end the completeness check looks at."""

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {0: (1, "grey"), 2: (3, "RGB"), 3: (3, "palette"), 4: (2, "grey+alpha"),
                    6: (4, "RGBA")}  # fmt: skip
_JPEG_MODES = {1: "grey", 3: "YCbCr"}
_ADOBE_CMYK_TRANSFORMS = {0: "CMYK", 2: "YCCK"}

ImageFormat = Literal["jpeg", "png", "gif", "bmp", "webp"]
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
"""File endings of the images the loop takes from a folder (the formats read here, lower case),
locally and on AWS; only JPEG and PNG reach the model, the others are labeled by humans (ingest
marks them)."""
PREDICTABLE_FORMATS: tuple[ImageFormat, ...] = ("jpeg", "png")
"""What the built-in Object Detection algorithm decodes for inference (application/x-image)."""
ProblemCode = Literal["format", "channels", "payload", "incomplete", "unreadable"]


class ImageHeaderError(BoxloopError, ValueError):
    """The bytes are not a PNG, JPEG, GIF, BMP or WebP header this module can read."""


def image_files(folder: Path) -> list[Path]:
    """The image files (`IMAGE_SUFFIXES`) anywhere under ``folder``, sorted.

    Raises:
        BoxloopError: there is none.
    """
    paths = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise BoxloopError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageHeader:
    """What an image's header says.

    Attributes:
        format: The file format, from its signature (never from the file name).
        width: Width in pixels.
        height: Height in pixels.
        channels: Colour channels a decoder yields: a JPEG's frame component count, a PNG's
            colour type (a palette counts as 3); ``None`` for formats whose header is not read
            that far (GIF, BMP, WebP: the algorithm takes none of them).
        mode: The colour model in words (``grey``, ``YCbCr``, ``CMYK``, ``RGBA``...), for messages.
    """

    format: ImageFormat
    width: int
    height: int
    channels: int | None = None
    mode: str = ""

    @property
    def image_wh(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class ImageProblem:
    """Why the batch transform cannot take an image, and what the user can do about it."""

    code: ProblemCode
    reason: str
    fix: str


class _Window:
    """The file's bytes around a position: the first read, then more through ``read_at``."""

    def __init__(self, head: bytes, read_at: ReadAt | None) -> None:
        self.start = 0
        self.data = head
        self.read_at = read_at
        self.reads = 0

    def get(self, pos: int, length: int) -> bytes:
        end = self.start + len(self.data)
        if self.start <= pos and pos + length <= end:
            return self.data[pos - self.start : pos - self.start + length]
        if self.read_at is not None and self.reads < MAX_EXTRA_READS:
            self.reads += 1
            self.start, self.data = pos, self.read_at(pos, max(length, HEADER_BYTES))
            return self.data[:length]
        return self.data[pos - self.start : pos - self.start + length] if pos >= self.start else b""


def _jpeg_header(window: _Window) -> ImageHeader:
    pos = 2
    adobe_transform: int | None = None
    while True:
        segment = window.get(pos, 16)
        if len(segment) < 4:
            raise ImageHeaderError(
                f"JPEG ends (or the header read stops) at byte {pos}, before its frame header"
            )
        if segment[0] != 0xFF:
            raise ImageHeaderError(f"corrupt JPEG marker at byte {pos}")
        marker = segment[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ImageHeaderError(f"JPEG has no frame header before its image data (byte {pos})")
        (length,) = struct.unpack(">H", segment[2:4])
        if marker == 0xEE and segment[4:9] == b"Adobe" and len(segment) >= 16:
            adobe_transform = segment[15]
        if marker in _SOF_MARKERS:
            if len(segment) < 10:
                raise ImageHeaderError(f"JPEG frame header at byte {pos} is cut off")
            height, width = struct.unpack(">HH", segment[5:9])
            channels = segment[9]
            mode = _JPEG_MODES.get(channels, f"{channels} components")
            if channels == 4:
                mode = _ADOBE_CMYK_TRANSFORMS.get(adobe_transform or 0, "CMYK")
            return ImageHeader(
                format="jpeg", width=width, height=height, channels=channels, mode=mode
            )
        pos += 2 + length


def _png_header(data: bytes) -> ImageHeader:
    if len(data) < 26 or data[12:16] != b"IHDR":
        raise ImageHeaderError("PNG has no IHDR chunk where it must be (truncated file?)")
    width, height = struct.unpack(">II", data[16:24])
    channels, mode = _PNG_COLOR_TYPES.get(data[25], (0, f"colour type {data[25]}"))
    return ImageHeader(format="png", width=width, height=height, channels=channels, mode=mode)


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise ImageHeaderError("unsupported WebP header")


def read_image_header(data: bytes, read_at: ReadAt | None = None) -> ImageHeader:
    """The format, size and channels of an image from the start of its file.

    Args:
        data: The file's first bytes (``HEADER_BYTES`` is plenty for all but JPEGs with huge
            metadata blocks).
        read_at: Reads more of the same file; a JPEG whose frame header lies past ``data``
            is then followed segment by segment (at most ``MAX_EXTRA_READS`` reads).

    Raises:
        ImageHeaderError: for formats other than PNG, JPEG, GIF, BMP and WebP, or when the
            header is cut off or corrupt.
    """
    if data[:8] == _PNG_SIGNATURE:
        header = _png_header(data)
    elif data[:2] == b"\xff\xd8":
        header = _jpeg_header(_Window(data, read_at))
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        header = ImageHeader(format="gif", width=width, height=height)
    elif data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        header = ImageHeader(format="bmp", width=width, height=abs(height))
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
        header = ImageHeader(format="webp", width=width, height=height)
    else:
        raise ImageHeaderError("not a PNG, JPEG, GIF, BMP or WebP file")
    if header.width <= 0 or header.height <= 0:
        raise ImageHeaderError(f"header says {header.width}x{header.height}")
    return header


def is_complete(image_format: ImageFormat, tail: bytes) -> bool:
    """Whether the last bytes of a JPEG or PNG file hold its end marker (other formats: True).

    A file cut short (an interrupted copy) keeps an intact header, and a PNG decoder then fails
    on it; the JPEG end-of-image marker is looked for in the last ``TAIL_BYTES`` because some
    cameras append data after it.
    """
    if image_format == "png":
        return b"IEND" in tail[-16:]
    if image_format == "jpeg":
        return b"\xff\xd9" in tail[-TAIL_BYTES:]
    return True


def transform_problem(
    header: ImageHeader, size_bytes: int, *, max_payload_mb: int
) -> ImageProblem | None:
    """Why the built-in algorithm's batch transform cannot take this image, or ``None``.

    Args:
        header: The image's header.
        size_bytes: The object's size: the transform sends the whole file as one record.
        max_payload_mb: The transform job's ``MaxPayloadInMB``, counted as 10**6 bytes (the
            stricter reading of "MB").
    """
    if header.format not in PREDICTABLE_FORMATS:
        return ImageProblem(
            "format",
            f"{header.format.upper()} image: the Object Detection algorithm reads JPEG or PNG",
            "convert it to JPEG or PNG and list the new file in the manifest",
        )
    if header.channels != 3:
        return ImageProblem(
            "channels",
            f"{header.mode} {header.format.upper()} ({header.channels} channels): the Object "
            "Detection algorithm takes 3-channel (RGB) images only",
            "convert it to RGB (e.g. `convert in.jpg -colorspace sRGB -type TrueColor out.jpg`)",
        )
    if size_bytes > max_payload_mb * 1_000_000:
        return ImageProblem(
            "payload",
            f"{size_bytes:,} bytes, over the batch transform's MaxPayloadInMB of {max_payload_mb}",
            f"re-encode or downscale it below {max_payload_mb} MB (the model sees it at "
            "image_shape pixels anyway)",
        )
    return None


def unreadable_problem(error: Exception) -> ImageProblem:
    """The problem of an image whose header could not be read (or whose file is cut short)."""
    return ImageProblem(
        "unreadable",
        f"cannot read the image header: {error}",
        "check that the object exists, is readable by the stack's roles and is a valid JPEG or PNG",
    )


def incomplete_problem(header: ImageHeader, size_bytes: int) -> ImageProblem:
    """The problem of a file whose end marker is missing: it was cut short."""
    return ImageProblem(
        "incomplete",
        f"{header.format.upper()} file of {size_bytes:,} bytes has no end marker: it is "
        "truncated and a decoder may fail on it",
        "copy the original file again",
    )
