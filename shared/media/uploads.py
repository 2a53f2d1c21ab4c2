"""Uploads: files an account keeps in Conduit to use as model inputs (``/v1/uploads``).

A file is checked by its bytes (``shared.media.files``: PNG, JPEG, WebP, GIF, MP4, WebM, within the size and
pixel caps), stored under ``uploads/<id>/file.<ext>`` in the same storage as outputs, and kept
``UPLOAD_RETENTION_S``; then a sweep deletes it. An account's live uploads may take at most
``UPLOAD_QUOTA_BYTES`` (checked under a per-account lock, so concurrent uploads cannot pass it together). Only
the owner sees or uses an upload: for anyone else it does not exist (404). A task that used an upload keeps its
own copy (``shared.media.inputs``), so deleting or expiring the upload never breaks the task.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass

from shared.infra.db import Connection, Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.infra.pagination import Page
from shared.infra.storage import EXTENSIONS, LocalStorage
from shared.media.files import MediaInfo, check_media
from shared.media.settings import MediaSettings

log = logging.getLogger(__name__)

ID_PREFIX = "upl_"
_PUBLIC_ID = re.compile(r"upl_([0-9a-f]{32})")


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: uuid.UUID
    account_id: uuid.UUID
    content_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_s: float | None
    storage_key: str
    created_at: dt.datetime
    expires_at: dt.datetime

    @property
    def public_id(self) -> str:
        return f"{ID_PREFIX}{self.id.hex}"


UPLOAD_ROWS = RecordMapping(UploadRecord, "media_uploads")


def parse_upload_id(value: str) -> uuid.UUID | None:
    """The row id of a public upload id (``upl_`` and 32 hex digits), or None."""
    match = _PUBLIC_ID.fullmatch(value)
    return uuid.UUID(match.group(1)) if match else None


def upload_not_found(value: str, *, param: str | None = None) -> NotFound:
    return NotFound(f"upload {value!r} does not exist", code="upload_not_found", param=param)


def storage_key(upload_id: uuid.UUID, content_type: str) -> str:
    return f"uploads/{upload_id}/file.{EXTENSIONS[content_type]}"


async def create_upload(
    db: Database, storage: LocalStorage, settings: MediaSettings, account_id: uuid.UUID, data: bytes
) -> UploadRecord:
    """Check, store and record one file; ``InvalidInput`` (param ``file``) when it is not acceptable or the
    account's quota would be exceeded."""
    info: MediaInfo = await asyncio.to_thread(
        check_media, data, max_bytes=settings.max_bytes, max_pixels=settings.max_pixels, param="file"
    )
    upload_id = uuid7()
    key = storage_key(upload_id, info.content_type)
    await storage.put(key, data)
    try:
        async with db.transaction() as conn:
            await _check_quota(conn, settings, account_id, info.size_bytes)
            row = await conn.fetchrow(
                f"""
                INSERT INTO media_uploads (id, account_id, content_type, size_bytes, width, height, duration_s,
                                           storage_key, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
                RETURNING {UPLOAD_ROWS.columns}
                """,
                upload_id, account_id, info.content_type, info.size_bytes, info.width, info.height, info.duration_s,
                key, float(settings.upload_retention_s),
            )  # fmt: skip
    except BaseException:
        await storage.delete_prefix(f"uploads/{upload_id}")
        raise
    assert row is not None
    return UPLOAD_ROWS.from_row(row)


async def _check_quota(conn: Connection, settings: MediaSettings, account_id: uuid.UUID, size: int) -> None:
    # One upload of an account at a time from here to the commit: the sum cannot be passed by two at once.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('media_uploads:' || $1::uuid::text, 0))", account_id
    )
    used = await conn.fetchval(
        "SELECT COALESCE(sum(size_bytes), 0) FROM media_uploads WHERE account_id = $1 AND expires_at > now()",
        account_id,
    )
    if used + size > settings.quota_bytes:
        raise InvalidInput(
            f"this upload would take the account's uploads to {used + size} bytes, over its quota of "
            f"{settings.quota_bytes} bytes; delete uploads you no longer need",
            code="upload_quota_exceeded",
            param="file",
        )


async def get_upload(db: Database, account_id: uuid.UUID, public_id: str, *, param: str | None = None) -> UploadRecord:
    """The account's live upload of this id; ``NotFound`` for an unknown, expired or another account's id."""
    upload_id = parse_upload_id(public_id)
    row = None
    if upload_id is not None:
        row = await db.fetchrow(
            f"SELECT {UPLOAD_ROWS.columns} FROM media_uploads WHERE id = $1 AND account_id = $2 AND expires_at > now()",
            upload_id,
            account_id,
        )
    if row is None:
        raise upload_not_found(public_id, param=param)
    return UPLOAD_ROWS.from_row(row)


async def list_uploads(db: Database, account_id: uuid.UUID, *, limit: int, after: str | None) -> Page[UploadRecord]:
    """The account's live uploads, newest first; ``after`` is the id the previous page ended with."""
    cursor = parse_upload_id(after) if after else None
    if after and cursor is None:
        raise InvalidInput("after must be an upload id from the previous page", param="after")
    rows = await db.fetch(
        f"""
        SELECT {UPLOAD_ROWS.columns} FROM media_uploads
        WHERE account_id = $1 AND expires_at > now() AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        account_id,
        cursor,
        limit + 1,
    )
    uploads = [UPLOAD_ROWS.from_row(row) for row in rows[:limit]]
    return Page(uploads, uploads[-1].public_id if len(rows) > limit and uploads else None)


async def delete_upload(db: Database, storage: LocalStorage, account_id: uuid.UUID, public_id: str) -> UploadRecord:
    upload = await get_upload(db, account_id, public_id)
    deleted = await db.fetchval("DELETE FROM media_uploads WHERE id = $1 RETURNING id", upload.id)
    if deleted is None:  # deleted by a concurrent request
        raise upload_not_found(public_id)
    await storage.delete_prefix(f"uploads/{upload.id}")
    return upload


async def purge_expired_uploads(db: Database, storage: LocalStorage, *, limit: int = 500) -> int:
    """Delete the files and rows of uploads past their ``expires_at`` (safe when every worker runs it at once)."""
    async with db.transaction() as conn:
        rows = await conn.fetch(
            """
            SELECT id FROM media_uploads WHERE expires_at <= now()
            ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
            """,
            limit,
        )
        for row in rows:  # files first, while the rows are locked: a crash leaves them to the next sweep
            await storage.delete_prefix(f"uploads/{row['id']}")
        await conn.execute("DELETE FROM media_uploads WHERE id = ANY($1::uuid[])", [row["id"] for row in rows])
    if rows:
        log.info("retention: deleted %d expired upload(s)", len(rows))
    return len(rows)


async def erase_uploads(db: Database, storage: LocalStorage, account_id: uuid.UUID) -> int:
    """Every upload of the account, files and rows (account deletion)."""
    rows = await db.fetch("DELETE FROM media_uploads WHERE account_id = $1 RETURNING id", account_id)
    for row in rows:
        await storage.delete_prefix(f"uploads/{row['id']}")
    return len(rows)
