"""What a user's file is, judged by its bytes: images decoded with a pixel cap, PDF, plain text that is not
markup; everything else (executables, archives, HTML or SVG whatever their name) is not recognised."""

from __future__ import annotations

import pytest

from shared.infra.media_checks import ImageTooLarge, decoded_image, detect, is_markup
from tests.files import image_bytes, png_bomb

CAP = 1_000_000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image_bytes("PNG"), "image/png"),
        (image_bytes("JPEG"), "image/jpeg"),
        (image_bytes("GIF"), "image/gif"),
        (image_bytes("WEBP"), "image/webp"),
        (image_bytes("PDF"), "application/pdf"),
        ("naïve log line\r\n\tindented\n".encode(), "text/plain"),
        (b'{"level": "error", "msg": "<none>"}\n', "text/plain"),
        (b"2026-11-22 12:00 upstream said <html> (a log that mentions a tag)\n", "text/plain"),
        (b"MZ\x90\x00", None),  # Windows executable
        (b"\x7fELF\x02\x01", None),
        (b"PK\x03\x04", None),  # zip
        (b"text with a \x00 byte", None),
        (b"\xff\xfe not utf-8", None),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"", None),
        # an image's header with something else behind it is not an image, nor text
        (b"\x89PNG\r\n\x1a\n" + bytes(8), None),
        (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", None),
        (image_bytes("PNG")[:-40], None),  # truncated
        # markup is active content, whatever the file is called
        (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", None),
        (b"\n   <script>alert(document.cookie)</script>", None),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="5"/></svg>', None),
        (b'\xef\xbb\xbf<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', None),
        (b"<!-- a comment first --><p>hi</p>", None),
        (b"<IFRAME src=x>", None),
    ],
)
def test_files_are_judged_by_their_bytes(data: bytes, expected: str | None) -> None:
    assert detect(data, max_pixels=CAP) == expected


def test_images_are_decoded_and_measured() -> None:
    info = decoded_image(image_bytes("JPEG", (640, 480)), max_pixels=CAP)
    assert info is not None and (info.content_type, info.width, info.height) == ("image/jpeg", 640, 480)


@pytest.mark.parametrize("size", [(1001, 1000), (20_000, 20_000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_before_decoding(size: tuple[int, int]) -> None:
    bomb = png_bomb(*size)
    assert len(bomb) < 100_000  # a few bytes on the wire ...
    with pytest.raises(ImageTooLarge, match="more than 1,000,000 pixels"):  # ... that would be gigabytes decoded
        detect(bomb, max_pixels=CAP)
    assert detect(image_bytes("PNG", (1000, 1000)), max_pixels=CAP) == "image/png"  # at the cap


def test_markup_is_what_a_browser_would_render() -> None:
    assert is_markup("<html>") and is_markup("  <B>bold</B>") and is_markup("\ufeff<svg/>") and is_markup("<p")
    assert not is_markup("a <b> tag later") and not is_markup("<none>") and not is_markup("<bash> log")
