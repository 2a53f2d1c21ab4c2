"""Support tickets, pure parts: file names, caps, storage keys, API key redaction (file types: test_media_checks)."""

from __future__ import annotations

import uuid

import pytest

from shared.accounts.keys import generate_secret
from shared.accounts.redaction import redact_keys
from shared.infra.errors import InvalidInput, PayloadTooLarge
from shared.infra.storage import valid_key
from shared.support.attachments import Upload, check_uploads, clean_filename
from shared.support.settings import SupportSettings
from tests.files import image_bytes


def test_file_names_are_cleaned() -> None:
    assert clean_filename("../../etc/passwd", "text/plain") == "passwd"
    assert clean_filename("C:\\Users\\me\\shot.png", "image/png") == "shot.png"
    assert clean_filename("bad\x00\nname.txt", "text/plain") == "badname.txt"
    assert clean_filename("", "application/pdf") == "attachment.pdf"
    long = clean_filename("x" * 300 + ".png", "image/png")
    assert len(long) == 255 and long.endswith(".png")


def test_caps_and_storage_keys() -> None:
    settings = SupportSettings(attachment_max_bytes=1024, attachments_per_message=2, attachments_per_ticket=3)
    png = Upload("a.png", image_bytes("PNG"))
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
