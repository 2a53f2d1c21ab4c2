"""OpenAI's Files API, for batches: ``purpose: "batch"`` uploads (JSONL, one request per line) and the output
and error files batches produce (``purpose: "batch_output"``). The bytes live in storage; the row says whose
they are. Another account's file is "not found"."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from shared.batches import FILE_PREFIX, parse_id, public_id
from shared.infra.db import Connection, Database
from shared.infra.db.records import RecordMapping
from shared.infra.errors import InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.infra.storage import LocalStorage

UPLOAD_PURPOSES = ("batch",)
OUTPUT_PURPOSE = "batch_output"
MAX_FILENAME = 255


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: uuid.UUID
    account_id: uuid.UUID
    purpose: str
    filename: str
    bytes: int
    storage_key: str
    created_at: dt.datetime


FILES = RecordMapping(FileRecord, "openai_files")


def public_file(file: FileRecord) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": public_id(FILE_PREFIX, file.id),
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at.timestamp()),
        "expires_at": None,
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "status_details": None,
    }


def file_not_found(file_id: object) -> NotFound:
    return NotFound(f"No such File object: {file_id}", code="file_not_found", param="file_id")


async def upload_file(
    db: Database, storage: LocalStorage, account_id: uuid.UUID, *, purpose: str, filename: str, data: bytes
) -> FileRecord:
    """Store an upload. A batch input must be UTF-8 JSONL: every line a JSON object (checked in full when a batch
    is created from it)."""
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}", param="purpose")
    if not filename or len(filename) > MAX_FILENAME or "\x00" in filename:
        raise InvalidInput(f"the file needs a name of 1-{MAX_FILENAME} characters", param="file")
    if not filename.endswith(".jsonl"):
        raise InvalidInput("a batch input file must be a .jsonl file", param="file")
    if not data.strip():
        raise InvalidInput("the file is empty", param="file")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the file must be UTF-8 text", param="file") from None
    return await store_file(db, storage, account_id, purpose=purpose, filename=filename, data=data)


async def store_file(
    conn: Connection | Database,
    storage: LocalStorage,
    account_id: uuid.UUID,
    *,
    purpose: str,
    filename: str,
    data: bytes,
) -> FileRecord:
    """Write the bytes, then the row that makes them the account's file."""
    file_id = uuid7()
    key = f"batchfiles/{account_id}/{file_id.hex}.jsonl"
    await storage.put(key, data)
    row = await conn.fetchrow(
        f"""
        INSERT INTO openai_files (id, account_id, purpose, filename, bytes, storage_key)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING {FILES.columns}
        """,
        file_id,
        account_id,
        purpose,
        filename,
        len(data),
        key,
    )
    assert row is not None
    return FILES.from_row(row)


async def get_file(db: Database | Connection, account_id: uuid.UUID, file_id: str) -> FileRecord:
    parsed = parse_id(FILE_PREFIX, file_id)
    if parsed is None:
        raise file_not_found(file_id)
    row = await db.fetchrow(
        f"SELECT {FILES.columns} FROM openai_files WHERE id = $1 AND account_id = $2", parsed, account_id
    )
    if row is None:
        raise file_not_found(file_id)
    return FILES.from_row(row)


async def file_content(storage: LocalStorage, file: FileRecord) -> bytes:
    path = storage.path(file.storage_key)
    if not path.is_file():
        raise file_not_found(public_id(FILE_PREFIX, file.id))
    return await asyncio.to_thread(path.read_bytes)
