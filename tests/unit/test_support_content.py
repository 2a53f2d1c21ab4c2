"""Support tickets, pure parts: content sniffing, file names, caps, storage keys, API key redaction."""

from __future__ import annotations

import uuid

import pytest

from shared.accounts.keys import generate_secret
from shared.accounts.redaction import redact_keys
from shared.infra.errors import InvalidInput, PayloadTooLarge
from shared.infra.storage import valid_key
from shared.settings import SupportSettings
from shared.support.attachments import Upload, check_uploads, clean_filename, sniff


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png"),
        (b"\xff\xd8\xff\xe0" + bytes(8), "image/jpeg"),
        (b"GIF89a" + bytes(8), "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n", "application/pdf"),
        ("naïve log line\r\n\tindented\n".encode(), "text/plain"),
        (b"MZ\x90\x00", None),  # Windows executable
        (b"\x7fELF\x02\x01", None),
        (b"PK\x03\x04", None),  # zip
        (b"text with a \x00 byte", None),
        (b"\xff\xfe not utf-8", None),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
    ],
)
def test_sniff_decides_by_content(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_file_names_are_cleaned() -> None:
    assert clean_filename("../../etc/passwd", "text/plain") == "passwd"
    assert clean_filename("C:\\Users\\me\\shot.png", "image/png") == "shot.png"
    assert clean_filename("bad\x00\nname.txt", "text/plain") == "badname.txt"
    assert clean_filename("", "application/pdf") == "attachment.pdf"
    long = clean_filename("x" * 300 + ".png", "image/png")
    assert len(long) == 255 and long.endswith(".png")


def test_caps_and_storage_keys() -> None:
    settings = SupportSettings(attachment_max_bytes=1024, attachments_per_message=2, attachments_per_ticket=3)
    png = Upload("a.png", b"\x89PNG\r\n\x1a\n" + bytes(10))
    checked = check_uploads([png, png], settings)
    key = checked[0].storage_key(uuid.uuid4(), uuid.uuid4())
    assert valid_key(key) and key.startswith("attachments/") and key.endswith(".png")
    with pytest.raises(InvalidInput, match="at most 2 attachments per message"):
        check_uploads([png] * 3, settings)
    with pytest.raises(InvalidInput, match="at most 3 attachments"):
        check_uploads([png, png], settings, already_on_ticket=2)
    with pytest.raises(PayloadTooLarge) as too_large:
        check_uploads([png, Upload("big.png", png.data + bytes(1024))], settings)
    assert too_large.value.param == "files[1]"


def test_redaction_finds_every_key_and_only_keys() -> None:
    first, second = generate_secret(), generate_secret()
    text = f"{first} and ({second}), again {first}; cdt_short; x{first[1:]}"
    redacted = redact_keys(text)
    assert redacted.keys == (first, second)
    assert first not in redacted.text and second not in redacted.text
    assert redacted.text.count(f"[redacted API key {first[:12]}…]") == 2
    assert "cdt_short" in redacted.text
    assert redact_keys(first + "Z").keys == ()  # 41 characters: not a key
    assert redact_keys("no keys here").keys == ()
