"""Image width and height from the first bytes of a file, without decoding the image.

The post-processing step needs the size of every predicted image to turn normalized boxes
into pixels; reading a few kilobytes of header per image is what keeps it cheap at scale.
"""

from __future__ import annotations

import struct

HEADER_BYTES = 64 * 1024
"""Enough for the SOF marker of JPEGs with large EXIF blocks in the usual case."""

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageHeaderError(ValueError):
    """The bytes are not a PNG, JPEG, GIF, BMP or WebP header this module can read."""


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageHeaderError(f"corrupt JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise ImageHeaderError(f"no JPEG frame header in the first {len(data)} bytes; read more")


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


def image_size_from_header(data: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels from the start of an image file.

    Raises:
        ImageHeaderError: for formats other than PNG, JPEG, GIF, BMP and WebP, or when the
            header lies beyond ``data``.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
    elif data[:2] == b"\xff\xd8":
        width, height = _jpeg_size(data)
    elif data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
    elif data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        height = abs(height)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
    else:
        raise ImageHeaderError("not a PNG, JPEG, GIF, BMP or WebP file")
    if width <= 0 or height <= 0:
        raise ImageHeaderError(f"header says {width}x{height}")
    return width, height
