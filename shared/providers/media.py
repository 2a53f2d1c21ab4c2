"""What a file really is, judged by its bytes (never by a server's Content-Type), and its dimensions.

* ``sniff`` recognises the formats we store: PNG, JPEG, WebP, GIF, MP4/QuickTime, WebM;
* ``measure`` returns width, height and duration: images through Pillow (header only, no decoding of the
  pixels), GIF animations' duration from their frame delays, MP4 from its ``mvhd``/``tkhd`` boxes.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
VIDEO_TYPES = ("video/mp4", "video/webm", "image/gif")  # animated GIF is how the local provider renders video


def sniff(data: bytes) -> str | None:
    head = data[:32]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def acceptable(output_type: str, content_type: str) -> bool:
    if output_type == "image":
        return content_type in IMAGE_TYPES
    if output_type == "video":
        return content_type in VIDEO_TYPES
    return False


@dataclass(frozen=True, slots=True)
class Dimensions:
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


def measure(data: bytes, content_type: str) -> Dimensions:
    if content_type == "video/mp4":
        return mp4_dimensions(data)
    if content_type in IMAGE_TYPES:
        return _image_dimensions(data, content_type)
    return Dimensions()


def _image_dimensions(data: bytes, content_type: str) -> Dimensions:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                duration = None
                frames = int(getattr(image, "n_frames", 1))
                if content_type == "image/gif" and frames > 1:
                    total_ms = 0
                    for frame in range(frames):
                        image.seek(frame)
                        total_ms += int(image.info.get("duration", 0))
                    duration = round(total_ms / 1000, 3) if total_ms else None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, EOFError):
        return Dimensions()
    return Dimensions(width=width, height=height, duration_s=duration)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    found = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            break
        found.append((kind, offset + header, offset + size))
        offset += size
    return found


def mp4_dimensions(data: bytes) -> Dimensions:
    """Duration from ``moov/mvhd``; width and height from the first video ``trak/tkhd``."""
    moov = next(((s, e) for kind, s, e in _boxes(data, 0, len(data)) if kind == b"moov"), None)
    if moov is None:
        return Dimensions()
    duration = width = height = None
    for kind, start, end in _boxes(data, *moov):
        if kind == b"mvhd" and end - start >= 32:
            version = data[start]
            if version == 1:
                timescale, length = struct.unpack_from(">IQ", data, start + 20)
            else:
                timescale, length = struct.unpack_from(">II", data, start + 12)
            if timescale:
                duration = round(length / timescale, 3)
        elif kind == b"trak" and width is None:
            for sub, sub_start, sub_end in _boxes(data, start, end):
                if sub == b"tkhd" and sub_end - sub_start >= 84:
                    w, h = struct.unpack_from(">II", data, sub_end - 8)
                    if w and h:
                        width, height = w >> 16, h >> 16
    return Dimensions(width=width, height=height, duration_s=duration)
