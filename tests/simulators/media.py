"""Real files for the simulators to serve: PNGs drawn with Pillow, and MP4 containers whose ``moov`` box
states a duration and a frame size (enough for anything that reads MP4 metadata; there are no frames)."""

from __future__ import annotations

import io
import random
import struct

from PIL import Image, ImageDraw


def png(width: int, height: int, seed: int = 0, *, noisy: bool = False) -> bytes:
    rng = random.Random(seed)
    if noisy:  # incompressible: for size-limit tests
        image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
        ImageDraw.Draw(image).ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(250, 250, 250))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4(width: int, height: int, seconds: float, *, timescale: int = 1000) -> bytes:
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    duration = int(seconds * timescale)
    mvhd = _box(
        b"mvhd",
        struct.pack(">B3xIIII", 0, 0, 0, timescale, duration)
        + struct.pack(">IH10x", 0x10000, 0x100)
        + matrix
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _box(
        b"tkhd",
        struct.pack(">B3sIIII4xI8xHHH2x", 0, b"\x00\x00\x03", 0, 0, 1, 0, duration, 0, 0, 0)
        + matrix
        + struct.pack(">II", width << 16, height << 16),
    )
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    return ftyp + _box(b"moov", mvhd + _box(b"trak", tkhd)) + _box(b"mdat", bytes(64))
