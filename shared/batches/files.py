"""OpenAI's Files API, for batches: ``purpose: "batch"`` uploads (JSONL, one request per line) and the output
and error files batches produce (``purpose: "batch_output"``). The bytes live in storage; the row says whose
they are. Another account's file is "not found".

Files are kept ``BATCH_FILE_RETENTION_S`` (``expires_at``), then the retention sweep deletes them; their owner may
delete them sooner, and deleting the account deletes them all. A deleted file's bytes are gone and it is "not
found"; its row stays (without its name), for the batches that name it."""

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


def public_file(file: FileRecord, retention_s: int) -> dict[str, Any]:
    """OpenAI's file object (``expires_at``: when the retention sweep deletes it)."""
    return {
        "id": public_id(FILE_PREFIX, file.id),
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at.timestamp()),
        "expires_at": int(file.created_at.timestamp()) + retention_s,
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
        f"SELECT {FILES.columns} FROM openai_files WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
        parsed,
        account_id,
    )
    if row is None:
        raise file_not_found(file_id)
    return FILES.from_row(row)


async def file_content(storage: LocalStorage, file: FileRecord) -> bytes:
    path = storage.path(file.storage_key)
    if not path.is_file():
        raise file_not_found(public_id(FILE_PREFIX, file.id))
    return await asyncio.to_thread(path.read_bytes)


async def list_files(
    db: Database, account_id: uuid.UUID, *, purpose: str | None, limit: int, after: str | None, order: str
) -> tuple[list[FileRecord], bool]:
    """The account's files (of ``purpose``), ``order`` by creation (``desc``: newest first), ``limit`` of them after
    the file ``after``; and whether more follow."""
    if not 1 <= limit <= 10_000:
        raise InvalidInput("limit must be between 1 and 10000", param="limit")
    if order not in ("asc", "desc"):
        raise InvalidInput('order must be "asc" or "desc"', param="order")
    if purpose is not None and purpose not in (*UPLOAD_PURPOSES, OUTPUT_PURPOSE):
        raise InvalidInput(f"purpose must be one of {', '.join((*UPLOAD_PURPOSES, OUTPUT_PURPOSE))}", param="purpose")
    cursor = None
    if after is not None:
        cursor = parse_id(FILE_PREFIX, after)
        if cursor is None:
            raise InvalidInput("after must be the id of a file", param="after")
    newest_first = order == "desc"
    rows = await db.fetch(
        f"""
        SELECT {FILES.columns} FROM openai_files
        WHERE account_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR purpose = $2)
          AND ($3::uuid IS NULL OR (CASE WHEN $5 THEN id < $3 ELSE id > $3 END))
        ORDER BY CASE WHEN $5 THEN id END DESC, id
        LIMIT $4
        """,
        account_id,
        purpose,
        cursor,
        limit + 1,
        newest_first,
    )
    return [FILES.from_row(row) for row in rows[:limit]], len(rows) > limit


async def delete_file(db: Database, storage: LocalStorage, account_id: uuid.UUID, file_id: str) -> FileRecord:
    """The owner deletes a file: its bytes and its name go; its id stays "not found"."""
    file = await get_file(db, account_id, file_id)
    await _delete(db, storage, "id = $1 AND account_id = $2", file.id, account_id)
    return file


async def purge_expired_files(db: Database, storage: LocalStorage, *, retention_s: int, limit: int = 500) -> int:
    """The retention sweep: delete the files made more than ``retention_s`` ago. Returns how many."""
    return await _delete(
        db,
        storage,
        """id IN (SELECT id FROM openai_files
                  WHERE deleted_at IS NULL AND created_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)""",
        float(retention_s),
        limit,
    )


async def erase_batch_data(db: Database, storage: LocalStorage, account_id: uuid.UUID) -> int:
    """Account deletion: every file of the account, and its batches' requests and results (a batch still running
    ends ``cancelled``; a line running meanwhile finds itself gone and is not charged). Returns the files deleted."""
    async with db.transaction() as conn:
        await conn.execute(
            """
            UPDATE openai_batches SET status = 'cancelled', cancelled_at = now(), metadata = NULL
            WHERE account_id = $1 AND status IN ('validating', 'in_progress', 'cancelling')
            """,
            account_id,
        )
        await conn.execute(
            "DELETE FROM openai_batch_lines WHERE batch_id IN (SELECT id FROM openai_batches WHERE account_id = $1)",
            account_id,
        )
        await conn.execute("UPDATE openai_batches SET metadata = NULL, errors = NULL WHERE account_id = $1", account_id)
    return await _delete(db, storage, "account_id = $1", account_id)


async def _delete(db: Database, storage: LocalStorage, where: str, *args: Any) -> int:
    """Mark the files ``where`` selects deleted (their names scrubbed), then remove their bytes."""
    rows = await db.fetch(
        f"UPDATE openai_files SET deleted_at = now(), filename = '' WHERE deleted_at IS NULL AND {where} "
        "RETURNING storage_key",
        *args,
    )
    for row in rows:
        await asyncio.to_thread(storage.path(row["storage_key"]).unlink, missing_ok=True)
    return len(rows)
