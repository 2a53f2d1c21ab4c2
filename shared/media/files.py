"""What an input file is, judged by its bytes alone (never by its name, a ``Content-Type`` or a URL's suffix).

Images (PNG, JPEG, WebP, GIF) are opened by ``shared.infra.media_checks``: the format by its signature, the
dimensions within the pixel cap (a decompression bomb is refused before any pixel is decoded), the structure
verified (chunks and checksums; the pixels are decoded by the model, not here); videos (MP4,
WebM) are recognised by their container's signature, and an MP4's size and duration read from its boxes (its
pixel count is capped like an image's). Everything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.infra.errors import InvalidInput
from shared.infra.media_checks import ImageTooLarge, decoded_image
from shared.providers.media import measure, sniff

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
VIDEO_TYPES = frozenset({"video/mp4", "video/webm"})
KINDS = {"image": IMAGE_TYPES, "video": VIDEO_TYPES}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    content_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None

    @property
    def kind(self) -> str:
        return "video" if self.content_type in VIDEO_TYPES else "image"

    @property
    def megapixels(self) -> float:
        return (self.width or 0) * (self.height or 0) / 1_000_000


def check_media(data: bytes, *, max_bytes: int, max_pixels: int, param: str, kind: str | None = None) -> MediaInfo:
    """The checked file, or ``InvalidInput`` naming ``param``: empty, over ``max_bytes``, not an accepted format
    (of ``kind``, "image" or "video", when given), or more pixels than ``max_pixels``."""
    if not data:
        raise InvalidInput(f"{param}: the file is empty", code="media_empty", param=param)
    if len(data) > max_bytes:
        raise InvalidInput(f"{param}: the file is larger than {max_bytes} bytes", code="media_too_large", param=param)
    info = _identify(data, max_pixels=max_pixels, param=param)
    if info is None or (kind is not None and info.content_type not in KINDS[kind]):
        wanted = {"image": "a PNG, JPEG, WebP or GIF image", "video": "an MP4 or WebM video"}.get(
            kind or "", "a PNG, JPEG, WebP or GIF image or an MP4 or WebM video"
        )
        raise InvalidInput(f"{param}: the file is not {wanted}", code="media_type_not_allowed", param=param)
    return info


def _identify(data: bytes, *, max_pixels: int, param: str) -> MediaInfo | None:
    sniffed = sniff(data)
    if sniffed in VIDEO_TYPES:
        size = measure(data, sniffed)
        if size.width and size.height and size.width * size.height > max_pixels:
            raise InvalidInput(
                f"{param}: the video has more than {max_pixels:,} pixels per frame", code="image_too_large", param=param
            )
        return MediaInfo(sniffed, len(data), size.width, size.height, size.duration_s)
    try:
        image = decoded_image(data, max_pixels=max_pixels, decode=False)
    except ImageTooLarge as exc:
        raise InvalidInput(f"{param}: {exc}", code="image_too_large", param=param) from None
    if image is None:
        return None
    return MediaInfo(image.content_type, len(data), image.width, image.height)
