"""Image headers: format, size and channels from the first bytes, checked against Pillow."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from boxloop.core.errors import BoxloopError
from boxloop.core.image_size import (
    HEADER_BYTES,
    ImageHeader,
    ImageHeaderError,
    is_complete,
    read_image_header,
    transform_problem,
)


def _encode(mode: str, fmt: str, size: tuple[int, int] = (37, 21), **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=0).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "fmt", "expected"),
    [
        ("RGB", "JPEG", ("jpeg", 3, "YCbCr")),  # the usual photo
        ("L", "JPEG", ("jpeg", 1, "grey")),  # greyscale JPEG: one component
        ("CMYK", "JPEG", ("jpeg", 4, "CMYK")),  # Pillow writes an Adobe marker, transform 0
        ("RGB", "PNG", ("png", 3, "RGB")),
        ("RGBA", "PNG", ("png", 4, "RGBA")),
        ("L", "PNG", ("png", 1, "grey")),
        ("LA", "PNG", ("png", 2, "grey+alpha")),
        ("P", "PNG", ("png", 3, "palette")),  # a palette decodes to RGB
        ("RGB", "GIF", ("gif", None, "")),  # other formats: no channel count
        ("RGB", "BMP", ("bmp", None, "")),
    ],
)
def test_read_image_header_matches_pillow(mode, fmt, expected):
    data = _encode(mode, fmt)
    header = read_image_header(data[:HEADER_BYTES])
    assert (header.format, header.channels, header.mode) == expected
    assert header.image_wh == (37, 21) == read_image_header(data).image_wh


def test_read_image_header_follows_a_jpeg_whose_frame_lies_past_the_first_read():
    # GIVEN a JPEG with 200 KiB of metadata before its frame header
    exif = b"Exif\x00\x00" + bytes(60_000)
    data = _encode("RGB", "JPEG", (64, 48))
    app_segments = b"".join(
        b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif for _ in range(4)
    )
    data = data[:2] + app_segments + data[2:]
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    # WHEN only the first HEADER_BYTES are given, without and with a way to read more
    with pytest.raises(ImageHeaderError, match="before its frame header"):
        read_image_header(data[:HEADER_BYTES])
    header = read_image_header(data[:HEADER_BYTES], read_at)
    # THEN the second reaches the frame header, in a few reads
    assert header.image_wh == (64, 48)
    assert header.channels == 3
    assert 1 <= len(reads) <= 4


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "not a PNG, JPEG"),  # an empty object
        (b"%PDF-1.7\n", "not a PNG, JPEG"),  # another file type
        (b"\x89PNG\r\n\x1a\n\x00\x00", "IHDR"),  # a PNG cut inside its header
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "before its frame header"),  # a JPEG cut short
        (b"\xff\xd8\x00\x00\x00\x00", "corrupt JPEG marker"),
        (b"\xff\xd8\xff\xda\x00\x02", "no frame header before its image data"),
    ],
)
def test_read_image_header_raises_image_header_error_when_unreadable(data, match):
    with pytest.raises(ImageHeaderError, match=match):
        read_image_header(data)


def test_image_header_error_is_a_boxloop_error():
    # the Processing job prints a BoxloopError and exits 2, never with a traceback
    assert issubclass(ImageHeaderError, BoxloopError)


@pytest.mark.parametrize(
    ("fmt", "cut", "expected"),
    [
        ("JPEG", 0, True),  # whole file: ends with FFD9
        ("JPEG", 40, False),  # cut short
        ("PNG", 0, True),  # whole file: ends with the IEND chunk
        ("PNG", 5, False),
    ],
)
def test_is_complete_finds_the_end_marker(fmt, cut, expected):
    data = _encode("RGB", fmt, (50, 40))
    data = data[: len(data) - cut]
    assert is_complete(fmt.lower(), data[-1024:]) is expected


@pytest.mark.parametrize(
    ("header", "size_bytes", "code"),
    [
        (ImageHeader(format="jpeg", width=9, height=9, channels=3, mode="YCbCr"), 10, None),
        (ImageHeader(format="png", width=9, height=9, channels=3, mode="RGB"), 10, None),
        # exactly the limit passes, one byte over does not (MB counted as 10**6)
        (ImageHeader(format="jpeg", width=9, height=9, channels=3), 6_000_000, None),
        (ImageHeader(format="jpeg", width=9, height=9, channels=3), 6_000_001, "payload"),
        (ImageHeader(format="jpeg", width=9, height=9, channels=1, mode="grey"), 10, "channels"),
        (ImageHeader(format="jpeg", width=9, height=9, channels=4, mode="CMYK"), 10, "channels"),
        (ImageHeader(format="png", width=9, height=9, channels=4, mode="RGBA"), 10, "channels"),
        (ImageHeader(format="gif", width=9, height=9), 10, "format"),
        (ImageHeader(format="webp", width=9, height=9), 10, "format"),
    ],
)
def test_transform_problem_names_what_the_algorithm_cannot_take(header, size_bytes, code):
    problem = transform_problem(header, size_bytes, max_payload_mb=6)
    assert (problem.code if problem else None) == code
    if problem:
        assert problem.reason
        assert problem.fix
