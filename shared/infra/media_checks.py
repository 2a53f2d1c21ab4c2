"""What a file from a user is, judged by its bytes alone (never by its name or the ``Content-Type`` sent with it),
for every place that accepts files: support ticket attachments, and input media.

* Images (PNG, JPEG, GIF, WebP) are opened by Pillow, restricted to those formats, and decoded in full once
  their dimensions are known to be within the caller's pixel cap: a decompression bomb (a small file declaring
  a huge image) is refused before any pixel is decoded (``ImageTooLarge``). Pillow's own check
  (``Image.MAX_IMAGE_PIXELS``, a warning above it and an error above twice it) is a refusal too.
* PDF documents by their header.
* Plain text: UTF-8 without control characters other than tab, line feed, form feed and carriage return, and
  not markup: text that a browser would sniff as HTML or XML (so also SVG and XHTML) is active content.

Anything else is not recognised (``None``). Nothing here changes process-wide state (no warning filters, no
Pillow globals), so the checks may run in a thread, away from the event loop. What is accepted must still be
served only as a download (``Content-Disposition: attachment``, ``X-Content-Type-Options: nosniff``, a
sandboxing CSP): these checks are the first defence against active content, the way files are served the second.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
PDF, TEXT = "application/pdf", "text/plain"
# Control characters a text file may contain: tab, line feed, form feed, carriage return.
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# How a document a browser would render as HTML or XML starts (the WHATWG MIME Sniffing standard's patterns for
# an unknown type, after leading white space), and SVG.
_MARKUP = re.compile(
    r"\s*(?:<!--|<\?xml|<(?:!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|svg)"
    r"(?:[\s>/]|$))",
    re.IGNORECASE,
)


class ImageTooLarge(ValueError):
    """The image has more pixels than the cap allows (decoding it could exhaust memory)."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def decoded_image(data: bytes, *, max_pixels: int, decode: bool = True) -> ImageInfo | None:
    """The image these bytes hold, decoded in full; None when they are not a whole image of an allowed format.
    Raises ``ImageTooLarge`` when it has more than ``max_pixels`` pixels. ``decode=False`` checks the file's
    structure (Pillow's ``verify``: chunks and checksums) instead of decoding every pixel, for files that only
    pass through (input media: the model decodes them)."""
    too_large = ImageTooLarge(f"the image has more than {max_pixels:,} pixels")
    try:
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):  # Pillow's own check
        raise too_large from None
    except Exception:  # a decoder fed arbitrary bytes fails in many ways; each means "not an image"
        return None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise too_large
        try:
            image.load() if decode else image.verify()
        except Exception:  # truncated or corrupt pixel data, or another format behind an image header
            return None
        return ImageInfo(IMAGE_FORMATS[str(image.format)], width, height)


def is_markup(text: str) -> bool:
    """Whether a browser would take this text for an HTML or XML document (SVG included)."""
    return bool(_MARKUP.match(text.removeprefix("\ufeff")))


def is_plain_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _TEXT_CONTROLS.search(text) and not is_markup(text)


def detect(data: bytes, *, max_pixels: int) -> str | None:
    """The content type of these bytes: an image type, PDF or plain text; None for anything else (or nothing).
    Raises ``ImageTooLarge`` for an image over ``max_pixels``."""
    if not data:
        return None
    image = decoded_image(data, max_pixels=max_pixels)
    if image is not None:
        return image.content_type
    if data.startswith(b"%PDF-"):
        return PDF
    return TEXT if is_plain_text(data) else None
