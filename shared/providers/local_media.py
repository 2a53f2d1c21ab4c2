"""The ``local`` provider's work on input files, so that tests (and offline development) can tell each input
arrived and was used:

* several reference images (``images``): blended into one, equally weighted, then restyled;
* restyle (image-to-image): the input, resized to the requested size, blended with a drawing of the prompt; the
  ``strength`` (0-1, default 0.35) is how much of the drawing shows, so the output depends on the input pixels;
* edit (with a mask): the drawing replaces the input only where the mask says (white, or transparent in a mask
  with an alpha channel, as OpenAI's edits take it); every other pixel stays the input's;
* upscale: the input enlarged ``scale`` times (Lanczos);
* animate (image-to-video): a GIF that slowly zooms into the still, ``duration_s`` x ``fps`` frames;
* describe (vision chat): the image's size, format and dominant colours, named.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image

from shared.providers.local import draw_image, frame_delays_ms

MAX_OUTPUT_PIXELS = 64_000_000  # an upscale larger than this is refused (memory)
_COLOUR_NAMES = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (220, 30, 30),
    "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40), "orange": (245, 140, 30),
    "purple": (130, 50, 170), "pink": (245, 150, 190), "brown": (130, 80, 40), "cyan": (40, 200, 220),
}  # fmt: skip


def _open_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _drawing(prompt: str, seed: int, size: tuple[int, int], style: tuple[Any, ...]) -> Image.Image:
    with Image.open(io.BytesIO(draw_image(prompt, seed, size[0], size[1], 0, style))) as drawn:
        return drawn.convert("RGB")


def restyle(
    data: bytes, prompt: str, seed: int, size: tuple[int, int] | None, strength: float, style: tuple[Any, ...] = ()
) -> bytes:
    source = _open_rgb(data)
    if size is not None and source.size != size:
        source = source.resize(size, Image.Resampling.LANCZOS)
    drawn = _drawing(prompt, seed, source.size, style)
    return _png(Image.blend(source, drawn, max(0.0, min(1.0, strength))))


def _min_alpha(image: Image.Image) -> int:
    low, _ = image.getchannel("A").getextrema()
    return int(low)  # type: ignore[arg-type]  # one band: (min, max) of ints


def blend(images: list[bytes]) -> bytes:
    """Several reference images as one (each resized to the first's size, weighted equally): what a local
    multi-image model restyles."""
    first = _open_rgb(images[0])
    combined = first
    for count, data in enumerate(images[1:], start=2):
        other = _open_rgb(data)
        if other.size != first.size:
            other = other.resize(first.size, Image.Resampling.LANCZOS)
        combined = Image.blend(combined, other, 1 / count)
    return _png(combined)


def edit_mask(mask: bytes, size: tuple[int, int]) -> Image.Image:
    """The area to change, as an ``L`` image (255: change): a mask's transparent pixels when it has an alpha
    channel with transparency, else its light pixels."""
    with Image.open(io.BytesIO(mask)) as opened:
        image = opened.convert("RGBA") if "A" in opened.getbands() or "transparency" in opened.info else None
        if image is not None and _min_alpha(image) < 255:
            area = image.getchannel("A").point(lambda alpha: 255 if alpha < 128 else 0)
        else:
            area = opened.convert("L").point(lambda level: 255 if level >= 128 else 0)
    return area.resize(size, Image.Resampling.NEAREST) if area.size != size else area


def edit(data: bytes, mask: bytes, prompt: str, seed: int, style: tuple[Any, ...] = ()) -> bytes:
    source = _open_rgb(data)
    drawn = _drawing(prompt, seed, source.size, style)
    return _png(Image.composite(drawn, source, edit_mask(mask, source.size)))


def upscale(data: bytes, scale: int) -> bytes:
    source = _open_rgb(data)
    width, height = source.width * scale, source.height * scale
    if width * height > MAX_OUTPUT_PIXELS:
        raise ValueError(f"the upscaled image would have more than {MAX_OUTPUT_PIXELS:,} pixels")
    return _png(source.resize((width, height), Image.Resampling.LANCZOS))


def animate(data: bytes, size: tuple[int, int] | None, seconds: int, fps: int) -> bytes:
    source = _open_rgb(data)
    if size is None:  # the still's own shape, at most 512 pixels wide or high
        ratio = min(1.0, 512 / max(source.size))
        size = (max(16, int(source.width * ratio)), max(16, int(source.height * ratio)))
    count = max(1, seconds * fps)
    frames = []
    for n in range(count):
        zoom = 1 + 0.25 * n / max(1, count - 1)  # up to 25 % closer by the last frame
        crop_w, crop_h = source.width / zoom, source.height / zoom
        left, top = (source.width - crop_w) / 2, (source.height - crop_h) / 2
        frame = source.resize(size, Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h))
        frames.append(frame.convert("P", palette=Image.Palette.ADAPTIVE, colors=64))
    buffer = io.BytesIO()
    delays = frame_delays_ms(seconds, fps)
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=delays, loop=0)
    return buffer.getvalue()


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(_COLOUR_NAMES, key=lambda name: sum((a - b) ** 2 for a, b in zip(_COLOUR_NAMES[name], rgb, strict=True)))


def describe(data: bytes) -> str:
    """``a 64x48 PNG image; dominant colours: red (#dc1e1e, 75%), blue (#2850dc, 25%)``."""
    with Image.open(io.BytesIO(data)) as opened:
        kind, (width, height) = str(opened.format), opened.size
        small = opened.convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
    found = small.quantize(colors=4, method=Image.Quantize.MEDIANCUT).convert("RGB").getcolors(64 * 64) or []
    counts: list[tuple[int, tuple[int, int, int]]] = [(n, tuple(rgb)[:3]) for n, rgb in found]  # type: ignore[arg-type, misc]
    counts.sort(reverse=True)
    colours = [
        f"{colour_name(rgb)} (#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}, {round(100 * count / (64 * 64))}%)"
        for count, rgb in counts[:3]
        if count * 20 >= 64 * 64  # at least 5 % of the image
    ]
    return f"a {width}x{height} {kind} image; dominant colours: {', '.join(colours)}"


def data_uri_bytes(url: str) -> bytes | None:
    """The bytes of a base64 ``data:`` URI (chat image parts arrive inlined), or None."""
    header, comma, payload = url.partition(",")
    if not (url.startswith("data:") and comma and header.endswith(";base64")):
        return None
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
