"""Batches of the OpenAI Batch API: create (every line of the input file checked, then the batch and its lines
stored in one transaction and its job enqueued as batch work), read, list, cancel. Shapes are OpenAI's.

The sweep hands unfinished batches' jobs over again (``requeue_batches``), so a batch outlives the loss of its job.
A batch whose input has invalid lines is stored ``failed`` with OpenAI's ``errors`` list (code, message, line),
and runs nothing. Cancelling stops the lines that have not started (``cancelling``; the job finishes the batch
as ``cancelled`` with what did run): nothing is held for a line before it runs, so nothing stays held.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from shared.accounts.keys import Principal
from shared.batches import BATCH_PREFIX, ENDPOINTS, FILE_PREFIX, parse_id, public_id
from shared.batches.files import file_content, get_file
from shared.batches.settings import BatchSettings
from shared.infra import jobs
from shared.infra.db import Database, to_json
from shared.infra.db.records import JSONB, RecordMapping
from shared.infra.errors import Conflict, InvalidInput, NotFound
from shared.infra.ids import uuid7
from shared.infra.queue import JobQueue
from shared.infra.storage import LocalStorage
from shared.tasks.submit import check_metadata

COMPLETION_WINDOWS = {"24h": dt.timedelta(hours=24)}
MAX_CUSTOM_ID = 512
MAX_ERRORS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: uuid.UUID
    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    endpoint: str
    input_file_id: uuid.UUID
    output_file_id: uuid.UUID | None
    error_file_id: uuid.UUID | None
    completion_window: str
    status: str
    metadata: Annotated[dict[str, Any] | None, JSONB]
    errors: Annotated[dict[str, Any] | None, JSONB]
    total: int
    completed: int
    failed: int
    created_at: dt.datetime
    in_progress_at: dt.datetime | None
    finalizing_at: dt.datetime | None
    completed_at: dt.datetime | None
    failed_at: dt.datetime | None
    cancelling_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    expires_at: dt.datetime
    expired_at: dt.datetime | None


BATCHES = RecordMapping(BatchRecord, "openai_batches")


@dataclass(frozen=True, slots=True)
class BatchLine:
    custom_id: str
    body: dict[str, Any]


def _ts(moment: dt.datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _file_id(row_id: uuid.UUID | None) -> str | None:
    return public_id(FILE_PREFIX, row_id) if row_id is not None else None


def public_batch(batch: BatchRecord) -> dict[str, Any]:
    """OpenAI's batch object."""
    return {
        "id": public_id(BATCH_PREFIX, batch.id),
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": public_id(FILE_PREFIX, batch.input_file_id),
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": _file_id(batch.output_file_id),
        "error_file_id": _file_id(batch.error_file_id),
        "created_at": _ts(batch.created_at),
        "in_progress_at": _ts(batch.in_progress_at),
        "expires_at": _ts(batch.expires_at),
        "finalizing_at": _ts(batch.finalizing_at),
        "completed_at": _ts(batch.completed_at),
        "failed_at": _ts(batch.failed_at),
        "expired_at": _ts(batch.expired_at),
        "cancelling_at": _ts(batch.cancelling_at),
        "cancelled_at": _ts(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": batch.failed},
        "metadata": batch.metadata,
    }


def batch_not_found(batch_id: object) -> NotFound:
    return NotFound(f"No such Batch object: {batch_id}", code="batch_not_found", param="batch_id")


def read_lines(data: bytes, endpoint: str, max_lines: int) -> tuple[list[BatchLine], list[dict[str, Any]]]:
    """The requests of a batch input file, and OpenAI-shaped errors (``code``, ``message``, ``param``, ``line``,
    1-based) for the lines that are not valid requests to ``endpoint``."""
    lines: list[BatchLine] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def refuse(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "message": message, "param": param, "line": number})

    texts = data.decode("utf-8").splitlines()
    if sum(1 for text in texts if text.strip()) > max_lines:
        return [], [{"code": "too_many_requests", "message": f"a batch may hold at most {max_lines} requests",
                     "param": None, "line": None}]  # fmt: skip
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            continue
        try:
            request = json.loads(text)
        except ValueError:
            refuse(number, "invalid_json_line", "This line is not valid JSON.")
            continue
        if not isinstance(request, dict):
            refuse(number, "invalid_json_line", "This line is not a JSON object.")
            continue
        custom_id = request.get("custom_id")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID:
            refuse(number, "missing_required_parameter", "custom_id must be a string.", "custom_id")
        elif custom_id in seen:
            refuse(number, "duplicate_custom_id", "The custom_id for this request is a duplicate.", "custom_id")
        elif request.get("method") != "POST":
            refuse(number, "invalid_method", "The method must be POST.", "method")
        elif request.get("url") != endpoint:
            refuse(number, "mismatched_endpoint", f"The url must be the batch's endpoint, {endpoint}.", "url")
        elif not isinstance(request.get("body"), dict) or not isinstance(request["body"].get("model"), str):
            refuse(number, "invalid_request", "body must be a request object with a model.", "body")
        else:
            seen.add(custom_id)
            lines.append(BatchLine(custom_id, request["body"]))
    return lines, errors


async def create_batch(
    db: Database,
    queue: JobQueue,
    storage: LocalStorage,
    settings: BatchSettings,
    principal: Principal,
    *,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, Any] | None,
) -> BatchRecord:
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint")
    if completion_window not in COMPLETION_WINDOWS:
        raise InvalidInput('completion_window must be "24h"', param="completion_window")
    checked = check_metadata(metadata) if metadata is not None else None
    file = await get_file(db, principal.account_id, input_file_id)
    if file.purpose != "batch":
        raise InvalidInput('the input file must be a file uploaded with purpose "batch"', param="input_file_id")
    lines, errors = read_lines(await file_content(storage, file), endpoint, settings.max_lines)
    if not lines and not errors:
        errors = [{"code": "empty_file", "message": "The input file holds no requests.", "param": None, "line": None}]
    batch_id = uuid7()
    failed = bool(errors)
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            INSERT INTO openai_batches (id, account_id, api_key_id, endpoint, input_file_id, completion_window,
                status, metadata, errors, total, in_progress_at, failed_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10,
                    CASE WHEN $11 THEN NULL ELSE now() END, CASE WHEN $11 THEN now() END,
                    now() + make_interval(secs => $12))
            RETURNING {BATCHES.columns}
            """,
            batch_id, principal.account_id, principal.api_key_id, endpoint, file.id, completion_window,
            "failed" if failed else "in_progress", to_json(checked) if checked is not None else None,
            to_json({"object": "list", "data": errors[:MAX_ERRORS_SHOWN]}) if failed else None,
            0 if failed else len(lines), failed, COMPLETION_WINDOWS[completion_window].total_seconds(),
        )  # fmt: skip
        assert row is not None
        if not failed:
            await conn.execute(
                """
                INSERT INTO openai_batch_lines (id, batch_id, line, custom_id, body)
                SELECT id, $1, line, custom_id, body
                FROM unnest($2::uuid[], $3::int[], $4::text[], $5::jsonb[]) AS l(id, line, custom_id, body)
                """,
                batch_id,
                [uuid7() for _ in lines],
                list(range(len(lines))),
                [line.custom_id for line in lines],
                [to_json(line.body) for line in lines],
            )
    if not failed:
        await queue.enqueue(jobs.run_openai_batch(str(batch_id)))
    return BATCHES.from_row(row)


async def get_batch(db: Database, account_id: uuid.UUID, batch_id: str) -> BatchRecord:
    parsed = parse_id(BATCH_PREFIX, batch_id)
    if parsed is None:
        raise batch_not_found(batch_id)
    row = await db.fetchrow(
        f"SELECT {BATCHES.columns} FROM openai_batches WHERE id = $1 AND account_id = $2", parsed, account_id
    )
    if row is None:
        raise batch_not_found(batch_id)
    return BATCHES.from_row(row)


async def list_batches(
    db: Database, account_id: uuid.UUID, *, limit: int, after: str | None
) -> tuple[list[BatchRecord], bool]:
    """Newest first, ``limit`` of them after the batch ``after``; and whether more follow."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be between 1 and 100", param="limit")
    cursor = None
    if after is not None:
        cursor = parse_id(BATCH_PREFIX, after)
        if cursor is None:
            raise InvalidInput("after must be the id of a batch", param="after")
    rows = await db.fetch(
        f"""
        SELECT {BATCHES.columns} FROM openai_batches
        WHERE account_id = $1 AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        account_id,
        cursor,
        limit + 1,
    )
    return [BATCHES.from_row(row) for row in rows[:limit]], len(rows) > limit


async def cancel_batch(db: Database, queue: JobQueue, account_id: uuid.UUID, batch_id: str) -> BatchRecord:
    """An unfinished batch goes ``cancelling``: its lines that have not started will not run (its job finishes
    it as ``cancelled``)."""
    batch = await get_batch(db, account_id, batch_id)
    async with db.transaction() as conn:
        row = await conn.fetchrow(
            f"""
            UPDATE openai_batches SET status = 'cancelling', cancelling_at = now()
            WHERE id = $1 AND status IN ('validating', 'in_progress')
            RETURNING {BATCHES.columns}
            """,
            batch.id,
        )
        if row is not None:
            await conn.execute(
                "UPDATE openai_batch_lines SET status = 'canceled' WHERE batch_id = $1 AND status = 'pending'", batch.id
            )
    if row is None:
        if batch.status == "cancelling":
            return batch
        raise Conflict(f"Cannot cancel a batch with status {batch.status}.", code="batch_not_cancelable")
    await queue.enqueue(jobs.run_openai_batch(str(batch.id)))
    return BATCHES.from_row(row)


async def requeue_batches(db: Database, queue: JobQueue, *, limit: int = 500) -> int:
    """Hand each unfinished batch's job to the workers again: a no-op for a job still queued or running (its id is
    the batch's), and a batch whose job was lost (Redis emptied) goes on. Returns how many were handed over."""
    rows = await db.fetch(
        "SELECT id FROM openai_batches WHERE status IN ('in_progress', 'cancelling') ORDER BY id LIMIT $1", limit
    )
    added = await queue.enqueue_many([jobs.run_openai_batch(str(row["id"])) for row in rows])
    return sum(added)
