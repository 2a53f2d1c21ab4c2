"""Ticket attachments: what is accepted, and how it is kept.

The type of a file is decided by its content (``shared.infra.media_checks``), never by the name or the
``Content-Type`` the client sent: PNG, JPEG, GIF and WebP images (decoded in full, up to
``SUPPORT_ATTACHMENT_MAX_PIXELS``), PDF, and plain text (UTF-8 without control characters: logs, JSON, CSV;
not HTML, SVG or other markup). Anything else is refused with ``400 attachment_type_not_allowed``, an image
with more pixels with ``400 image_too_large``, a file over the size cap with ``413``, more files than the caps
allow with ``400 too_many_attachments``.

Files are stored under ``attachments/<ticket id>/<attachment id>.<ext>`` and served only by the ticket routes,
to the ticket's owner and to staff, as downloads (``Content-Disposition: attachment``, ``nosniff``, a sandbox
CSP) — never through public signed URLs.
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from dataclasses import dataclass

from shared.infra.errors import InvalidInput, PayloadTooLarge
from shared.infra.media_checks import ImageTooLarge, detect
from shared.infra.storage import EXTENSIONS
from shared.support.settings import SupportSettings

MAX_FILENAME = 255


@dataclass(frozen=True, slots=True)
class Upload:
    """A file as received: the client's file name and the bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CheckedFile:
    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def storage_key(self, ticket_id: uuid.UUID, attachment_id: uuid.UUID) -> str:
        return f"attachments/{ticket_id}/{attachment_id}.{EXTENSIONS[self.content_type]}"


def clean_filename(name: str, content_type: str) -> str:
    """A display name: the last path component, without control characters, at most 255 characters."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if not name:
        name = f"attachment.{EXTENSIONS[content_type]}"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_FILENAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else name[:MAX_FILENAME]
    return name


def check_uploads(uploads: list[Upload], settings: SupportSettings, *, already_on_ticket: int = 0) -> list[CheckedFile]:
    """Validate the files of one message against the allow-list and the caps (in that order per file)."""
    if len(uploads) > settings.attachments_per_message:
        raise InvalidInput(
            f"at most {settings.attachments_per_message} attachments per message",
            code="too_many_attachments",
            param="files",
        )
    if already_on_ticket + len(uploads) > settings.attachments_per_ticket:
        raise InvalidInput(
            f"a ticket can have at most {settings.attachments_per_ticket} attachments ({already_on_ticket} already)",
            code="too_many_attachments",
            param="files",
        )
    checked = []
    for index, upload in enumerate(uploads):
        param = f"files[{index}]"
        if not upload.data:
            raise InvalidInput(f"{upload.filename or 'the file'} is empty", code="empty_attachment", param=param)
        if len(upload.data) > settings.attachment_max_bytes:
            raise PayloadTooLarge(
                f"{upload.filename or 'the file'} is larger than {settings.attachment_max_bytes} bytes",
                code="attachment_too_large",
                param=param,
            )
        try:
            content_type = detect(upload.data, max_pixels=settings.attachment_max_pixels)
        except ImageTooLarge as exc:
            name = upload.filename or "the image"
            raise InvalidInput(f"{name}: {exc}", code="image_too_large", param=param) from None
        if content_type is None:
            raise InvalidInput(
                f"{upload.filename or 'this file'} is not an allowed type; attach PNG, JPEG, GIF or WebP images, "
                "PDF documents or plain text (not HTML, SVG or other markup)",
                code="attachment_type_not_allowed",
                param=param,
            )
        checked.append(CheckedFile(clean_filename(upload.filename, content_type), content_type, upload.data))
    return checked
