"""Running a batch (the ``run_openai_batch`` job, on the batch queue): its pending lines, a few at once, each one
held, served and settled exactly like the synchronous request it describes (``shared.openai_api``) but priced
with the model's batch discount; then, once no line is pending, the output and error files and the batch's end
(``completed``; ``cancelled`` when it was cancelled meanwhile; ``expired`` when its completion window closed
before every line started).

Each line's charge commits in one transaction with its result (``_record``), so a line that runs again after a
worker's crash is charged once.

A run starts lines for at most ``run_budget_s`` (half the job timeout; each line gets at most as long again)
and then asks to be run again (the job re-enqueues itself), so that a large batch never outlives the job
timeout; a line interrupted mid-way runs again on the next run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.accounts.keys import Principal, principal_of_key
from shared.batches import BATCH_PREFIX, public_id
from shared.batches.batches import BATCHES, BatchRecord
from shared.batches.files import OUTPUT_PURPOSE, store_file
from shared.batches.settings import BatchSettings
from shared.catalog import Catalog
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database, from_json, to_json
from shared.infra.errors import ConduitError, InvalidInput, PermissionDenied, Unauthenticated
from shared.infra.ids import uuid7
from shared.infra.storage import LocalStorage
from shared.ledger.request_holds import count_charge, settle_request_in
from shared.ledger.settlement import Settlement
from shared.moderation.pipeline import Moderator
from shared.openai_api import chat, embeddings, settlements
from shared.openai_api.chat_response import ChatCompletion, chat_completion
from shared.openai_api.embeddings import EmbeddingList
from shared.providers import ProviderRegistry

log = logging.getLogger(__name__)

LINES_PER_FETCH = 200
RECORD_RETRY_PAUSES_S = (0.1, 0.5, 2.0)


@dataclass(frozen=True, slots=True)
class BatchRuntime:
    db: Database
    storage: LocalStorage
    catalog: Catalog
    providers: ProviderRegistry
    background: BackgroundTasks  # the process's (a line's settlement commits with its result, not there)
    settings: BatchSettings
    run_budget_s: float  # how long a run starts lines; each line's upstream time budget too
    moderator: Moderator  # every line is moderated as the same request made directly would be


def batch_catalog(catalog: Catalog) -> Catalog:
    """The catalog with every model priced for batch work (its ``batch_discount`` taken off)."""
    models = [dataclasses.replace(model, pricing=model.pricing.for_batch()) for model in catalog]
    return Catalog(models, catalog.version, catalog.providers)


async def run_batch(rt: BatchRuntime, batch_id: uuid.UUID) -> bool:
    """Run the batch's pending lines; True when it must run again (its time was up with lines left)."""
    batch = await _load(rt.db, batch_id)
    if batch is None or batch.status not in ("in_progress", "cancelling"):
        return False
    if batch.status == "in_progress":
        try:
            principal = await _principal(rt.db, batch)
        except (Unauthenticated, PermissionDenied) as refused:
            await _fail_pending(rt.db, batch.id, {"code": refused.code, "message": refused.message})
        else:
            if await _run_lines(rt, batch, principal):
                return True
    await _finish(rt, batch.id)
    return False


async def _load(db: Database, batch_id: uuid.UUID) -> BatchRecord | None:
    row = await db.fetchrow(f"SELECT {BATCHES.columns} FROM openai_batches WHERE id = $1", batch_id)
    return BATCHES.from_row(row) if row is not None else None


async def _principal(db: Database, batch: BatchRecord) -> Principal:
    """Lines run as the key that created the batch (its allowed models and spend cap apply), or as the person."""
    if batch.api_key_id is not None:
        return await principal_of_key(db, batch.api_key_id)
    row = await db.fetchrow("SELECT role, status FROM accounts WHERE id = $1", batch.account_id)
    if row is None or row["status"] != "active":
        raise PermissionDenied("this account can no longer run requests", code="account_not_active")
    return Principal(account_id=batch.account_id, api_key_id=None, role=row["role"])


async def _run_lines(rt: BatchRuntime, batch: BatchRecord, principal: Principal) -> bool:
    """Run pending lines, a few at once, until none is left (False) or the run's time is up (True)."""
    ends = time.monotonic() + rt.run_budget_s
    catalog = batch_catalog(rt.catalog)
    gate = asyncio.Semaphore(rt.settings.line_concurrency)

    async def run(line_id: uuid.UUID, custom_id: str, body: dict[str, Any]) -> None:
        async with gate:
            if time.monotonic() >= ends or not await _start_line(rt.db, batch.id, line_id):
                return
            with settlements.collected() as charges:  # committed with the line's result, not on their own
                outcome = await _run_line(rt, catalog, principal, batch.endpoint, body)
            await _record_retrying(rt.db, batch.id, line_id, custom_id, outcome, charges)

    # A line left running by an earlier run of this job (its worker died) runs again.
    await rt.db.execute(
        "UPDATE openai_batch_lines SET status = 'pending' WHERE batch_id = $1 AND status = 'running'", batch.id
    )

    while True:
        await _expire_when_due(rt.db, batch.id)
        rows = await rt.db.fetch(
            """
            SELECT id, custom_id, body FROM openai_batch_lines WHERE batch_id = $1 AND status = 'pending'
            ORDER BY line LIMIT $2
            """,
            batch.id,
            LINES_PER_FETCH,
        )
        if not rows:
            return False
        await asyncio.gather(*(run(row["id"], row["custom_id"], from_json(row["body"])) for row in rows))
        if time.monotonic() >= ends:
            return True


async def _expire_when_due(db: Database, batch_id: uuid.UUID) -> None:
    """Past the batch's completion window, its lines that have not started will not: the batch ends ``expired``."""
    await db.execute(
        """
        UPDATE openai_batch_lines SET status = 'canceled'
        WHERE batch_id = $1 AND status = 'pending'
          AND EXISTS (SELECT 1 FROM openai_batches WHERE id = $1 AND status = 'in_progress' AND expires_at <= now())
        """,
        batch_id,
    )


async def _start_line(db: Database, batch_id: uuid.UUID, line_id: uuid.UUID) -> bool:
    """pending -> running, unless the batch is no longer running (cancelled meanwhile)."""
    started = await db.fetchval(
        """
        UPDATE openai_batch_lines l SET status = 'running'
        FROM openai_batches b
        WHERE l.id = $2 AND l.status = 'pending' AND b.id = $1 AND b.status = 'in_progress' AND b.expires_at > now()
        RETURNING l.id
        """,
        batch_id,
        line_id,
    )
    return started is not None


@dataclass(frozen=True, slots=True)
class LineOutcome:
    response: EmbeddingList | ChatCompletion | None  # the response body of a line that succeeded
    error: dict[str, Any] | None  # OpenAI's {code, message} of one that did not


async def _run_line(
    rt: BatchRuntime, catalog: Catalog, principal: Principal, endpoint: str, body: dict[str, Any]
) -> LineOutcome:
    try:
        if endpoint == "/v1/embeddings":
            response, _ = await embeddings.create(
                rt.db, rt.background, catalog, rt.providers, principal, body, rt.run_budget_s, rt.moderator
            )
            return LineOutcome(response, None)
        if body.get("stream"):
            raise InvalidInput("a batch request cannot be streamed", param="stream")
        ctx = await chat.begin_raw(rt.db, rt.background, catalog, rt.providers, principal, body, moderator=rt.moderator)
        completed, provider = await chat.complete(ctx, rt.providers, rt.run_budget_s, rt.moderator)
        return LineOutcome(chat_completion(ctx.completion_id, ctx.served.model.id, provider, completed), None)
    except ConduitError as refused:
        return LineOutcome(None, {"code": refused.code, "message": refused.message})
    except Exception:
        log.exception("a batch line failed")
        return LineOutcome(None, {"code": "server_error", "message": "the request could not be served"})


async def _record_retrying(
    db: Database,
    batch_id: uuid.UUID,
    line_id: uuid.UUID,
    custom_id: str,
    outcome: LineOutcome,
    charges: Sequence[Settlement],
) -> None:
    """``_record``, tried again after a lost connection or a deadlock: recording twice changes nothing (the line's
    and the hold's compare-and-sets), so an attempt whose commit went through unseen is harmless to repeat."""
    for pause in (*RECORD_RETRY_PAUSES_S, None):
        try:
            await _record(db, batch_id, line_id, custom_id, outcome, charges)
            return
        except (asyncpg.PostgresConnectionError, asyncpg.DeadlockDetectedError, OSError) as exc:
            if pause is None:
                raise  # the line stays running, its hold pending: the next run runs it again
            log.warning("recording batch line %s failed (%s); retrying", line_id, exc)
            await asyncio.sleep(pause)


async def _record(
    db: Database,
    batch_id: uuid.UUID,
    line_id: uuid.UUID,
    custom_id: str,
    outcome: LineOutcome,
    charges: Sequence[Settlement] = (),
) -> None:
    """The line's output line (OpenAI's shape), the batch's counts and the settlement of the line's hold
    (``charges``: its charge and usage record), in one transaction: a line is charged exactly when its result is
    recorded. A worker that dies before the commit leaves the line running and its hold pending: the line runs
    again (and is charged then, once) and the abandoned-hold sweep releases the first hold. A line recorded
    meanwhile by another run is not charged again: this run's hold is released."""
    request_id = public_id("batch_req_", uuid7())
    succeeded = outcome.response is not None
    output = {
        "id": request_id,
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": outcome.response} if succeeded else None,
        "error": outcome.error,
    }
    async with db.transaction() as conn:
        recorded = await conn.fetchval(
            """
            WITH line AS (
                UPDATE openai_batch_lines SET status = $3, output = $4::jsonb, completed_at = now()
                WHERE id = $2 AND status IN ('pending', 'running') RETURNING 1
            )
            UPDATE openai_batches SET completed = completed + (CASE WHEN $3 = 'succeeded' THEN 1 ELSE 0 END),
                                      failed = failed + (CASE WHEN $3 = 'failed' THEN 1 ELSE 0 END)
            WHERE id = $1 AND EXISTS (SELECT 1 FROM line)
            RETURNING 1
            """,
            batch_id,
            line_id,
            "succeeded" if succeeded else "failed",
            to_json(output),
        )
        settled = []
        for item in charges:
            if recorded is None:  # recorded by another run: this run's hold goes back, uncharged
                item = dataclasses.replace(item, charge=0, resolution="voided", status="failed")
            settled.append((item, await settle_request_in(conn, item)))
    for item, charged in settled:
        count_charge(item, charged)


async def _fail_pending(db: Database, batch_id: uuid.UUID, error: dict[str, Any]) -> None:
    """Every pending line fails with ``error`` (the key that created the batch was revoked, ...)."""
    rows = await db.fetch(
        "SELECT id, custom_id FROM openai_batch_lines WHERE batch_id = $1 AND status = 'pending'", batch_id
    )
    for row in rows:
        await _record(db, batch_id, row["id"], row["custom_id"], LineOutcome(None, error))


async def _finish(rt: BatchRuntime, batch_id: uuid.UUID) -> None:
    """Write the output file (lines that succeeded) and the error file (lines that failed), in input order, and
    end the batch: ``completed``; ``cancelled`` if it was being cancelled; ``expired`` if its window closed
    before every line ran."""
    rows = await rt.db.fetch(
        "SELECT status, output FROM openai_batch_lines WHERE batch_id = $1 AND status IN ('succeeded', 'failed') "
        "ORDER BY line",
        batch_id,
    )
    outputs = [row["output"] for row in rows if row["status"] == "succeeded"]
    errors = [row["output"] for row in rows if row["status"] == "failed"]
    name = public_id(BATCH_PREFIX, batch_id)
    async with rt.db.transaction() as conn:
        batch = await conn.fetchrow(
            """
            SELECT account_id, status,
                   EXISTS (SELECT 1 FROM openai_batch_lines WHERE batch_id = $1 AND status = 'canceled') AS cut
            FROM openai_batches WHERE id = $1 FOR UPDATE
            """,
            batch_id,
        )
        if batch is None or batch["status"] not in ("in_progress", "cancelling"):
            return  # finished by an earlier run
        output_file = error_file = None
        if outputs:
            output_file = await store_file(conn, rt.storage, batch["account_id"], purpose=OUTPUT_PURPOSE,
                                           filename=f"{name}_output.jsonl", data=_jsonl(outputs))  # fmt: skip
        if errors:
            error_file = await store_file(conn, rt.storage, batch["account_id"], purpose=OUTPUT_PURPOSE,
                                          filename=f"{name}_error.jsonl", data=_jsonl(errors))  # fmt: skip
        ended = "cancelled" if batch["status"] == "cancelling" else "expired" if batch["cut"] else "completed"
        await conn.execute(
            f"""
            UPDATE openai_batches SET status = $2, output_file_id = $3, error_file_id = $4,
                finalizing_at = now(), {ended}_at = now()
            WHERE id = $1
            """,
            batch_id,
            ended,
            output_file.id if output_file else None,
            error_file.id if error_file else None,
        )
    log.info("batch %s %s: %d succeeded, %d failed", name, ended, len(outputs), len(errors))


def _jsonl(lines: list[str | bytes]) -> bytes:
    """Each stored output line (JSON text) on a line of its own."""
    return b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
