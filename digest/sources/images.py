"""An image's natural width from its first bytes (PNG, GIF, JPEG, WebP), without decoding it."""

from __future__ import annotations

import struct
from pathlib import Path

#: Enough of a file to find its size: JPEG's frame header may follow a long EXIF block.
HEADER_BYTES = 64 * 1024


def image_width(header: bytes) -> int | None:
    """The width in pixels an image's header declares, or None when it is not one we know."""
    if header.startswith(b"\x89PNG\r\n\x1a\n") and header[12:16] == b"IHDR" and len(header) >= 24:
        return _positive(struct.unpack(">I", header[16:20])[0])
    if header[:6] in (b"GIF87a", b"GIF89a") and len(header) >= 10:
        return _positive(struct.unpack("<H", header[6:8])[0])
    if header.startswith(b"RIFF") and header[8:12] == b"WEBP":
        return _webp_width(header)
    if header.startswith(b"\xff\xd8"):
        return _jpeg_width(header)
    return None


def file_image_width(path: Path) -> int | None:
    """The width of the image file at ``path``, reading its header only; None when unreadable."""
    try:
        with path.open("rb") as fh:
            return image_width(fh.read(HEADER_BYTES))
    except OSError:
        return None


def _positive(n: int) -> int | None:
    return n if 0 < n < 100_000 else None


def _webp_width(h: bytes) -> int | None:
    chunk = h[12:16]
    if chunk == b"VP8 " and len(h) >= 30:
        return _positive(struct.unpack("<H", h[26:28])[0] & 0x3FFF)
    if chunk == b"VP8L" and len(h) >= 25:
        bits = struct.unpack("<I", h[21:25])[0]
        return _positive((bits & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(h) >= 30:
        return _positive(int.from_bytes(h[24:27], "little") + 1)
    return None


# Start-of-frame markers (not DHT 0xC4, JPG 0xC8, DAC 0xCC), which carry the image's size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_width(h: bytes) -> int | None:
    i = 2
    while i + 4 <= len(h):
        if h[i] != 0xFF:
            return None
        marker = h[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", h[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(h):
                return None
            return _positive(struct.unpack(">H", h[i + 7 : i + 9])[0])
        i += 2 + length
    return None
