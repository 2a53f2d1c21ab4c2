"""Real files for tests of what users upload: images in each format Pillow writes, a PDF, and a decompression
bomb (a PNG that declares a huge image in a few hundred bytes)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    """An image in ``fmt`` (a Pillow format name: PNG, JPEG, GIF, WEBP, or PDF for a one-page document)."""
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` grey pixels and a short compressed stream of zeros:
    a decoder would allocate ``width * height`` bytes for it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(min(width + 1, 1 << 20) * 16), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
