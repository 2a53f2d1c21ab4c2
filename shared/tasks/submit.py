"""Submitting a task: validate, price the worst case, and in one transaction insert the task and place its
credit hold; then enqueue the job. An ``Idempotency-Key`` makes a retried submit return the first task."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from shared.accounts.key_policy import check_model_allowed
from shared.accounts.keys import Principal
from shared.accounts.redaction import without_keys
from shared.catalog import Catalog, Model
from shared.catalog.params import validate_input
from shared.catalog.pricing import cost, worst_case_usage
from shared.events import TASK_QUEUED
from shared.events.publish import TaskEvents
from shared.infra import jobs
from shared.infra.background import BackgroundTasks
from shared.infra.db import Connection, Database, to_json
from shared.infra.errors import Conflict, InvalidInput, ModelUnavailable, NotFound
from shared.infra.ids import uuid7
from shared.infra.queue import JobQueue
from shared.infra.urlguard import UrlGuard, parse_url
from shared.ledger import needs_spend_reservation, reserve_key_spend
from shared.media.inputs import input_prefix, media_parameters, resolve_task_media
from shared.media.sources import MediaSources
from shared.moderation.events import Subject
from shared.moderation.pipeline import Moderator
from shared.providers import ProviderRegistry
from shared.tasks import lifecycle
from shared.tasks.creation import NewTask, insert_task_and_hold, task_creations
from shared.tasks.queries import get_task
from shared.tasks.records import TASK_ROWS, TaskRecord

log = logging.getLogger(__name__)

MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True, slots=True)
class TaskSubmission:
    model: str
    input: dict[str, Any]
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None
    source: str = "task"  # the usage source of the route (a refusal's record names it)


@dataclass(frozen=True, slots=True)
class PreparedTask:
    model: Model
    params: dict[str, Any]
    hold: int
    metadata: dict[str, str]
    webhook_url: str | None


class _Replay(Exception):
    """Raised inside the submit transaction to roll it back when the idempotency key was used before."""


def prepare(catalog: Catalog, providers: ProviderRegistry, submission: TaskSubmission) -> PreparedTask:
    """Everything that needs no database: model lookup, input validation, worst-case price."""
    model = catalog.get(submission.model)
    if model is None:
        raise NotFound(
            f"model {submission.model!r} does not exist; see GET /v1/models",
            code="model_not_found",
            param="model",
        )
    if model.kind in ("embedding", "moderation"):
        raise InvalidInput(f"{model.id!r} is a{'n' if model.kind[0] == 'e' else ''} {model.kind} model: use POST "
                           f"/v1/{model.kind}s", param="model")  # fmt: skip
    if not providers.available(model):
        raise ModelUnavailable(f"model {model.id!r} has no provider configured right now", param="model")
    params = validate_input(model.parameters, submission.input)
    providers.check_routable(model, params)
    hold = cost(model.pricing, worst_case_usage(model.pricing.unit, params))
    return PreparedTask(
        model=model,
        params=params,
        hold=hold,
        metadata=check_metadata(submission.metadata),
        webhook_url=_check_webhook_url(submission.webhook_url),
    )


async def submit_task(
    *,
    db: Database,
    queue: JobQueue,
    catalog: Catalog,
    providers: ProviderRegistry,
    principal: Principal,
    submission: TaskSubmission,
    moderator: Moderator,
    url_guard: UrlGuard | None = None,
    task_id: uuid.UUID | None = None,
    media: MediaSources | None = None,
    background: BackgroundTasks | None = None,
    events: TaskEvents | None = None,
) -> tuple[TaskRecord, bool]:
    """Create the task (or find the one this idempotency key created). Returns (task, created).

    A ``webhook_url`` must pass ``url_guard`` (default: public addresses only). ``task_id`` is the id the new
    task gets (the one its rate-limit slots were taken for); a new one by default. The input is moderated before
    anything is held (``ContentPolicyViolation`` when the policy blocks it). Input files are fetched and stored
    through ``media`` (``shared.media.inputs``): fetched and checked before the hold, which covers their worst
    case; written while the task is inserted, its job handed out once they are (in ``background`` when given,
    so that the answer does not wait for the writes). With ``events``, the new task's ``task.queued`` is
    published."""
    check_model_allowed(principal, submission.model)  # the key's allowed-models list
    prepared = prepare(catalog, providers, submission)
    if prepared.webhook_url is not None:
        await (url_guard or UrlGuard()).check(prepared.webhook_url, param="webhook_url")
    key = submission.idempotency_key
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        raise InvalidInput(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters", param="Idempotency-Key")
    request_hash = submission_hash(submission) if key else ""
    task_id = task_id or uuid7()
    await moderator.check_request(principal, prepared.params, source=submission.source, model=prepared.model.id,
                                  kind=prepared.model.kind, task_id=task_id)  # fmt: skip
    if not any(p.name in prepared.params for p in media_parameters(prepared.model)):
        return await _create(db, queue, principal, prepared, task_id, key, request_hash, events=events)
    if media is None:
        raise ModelUnavailable("this server does not take input files here", param="input")
    resolved = await resolve_task_media(media, principal.account_id, task_id, prepared.model, prepared.params)
    if moderator.images is not None:  # the policy judges input images too (``[model] images = true``)
        try:
            subject = Subject.of(principal, submission.source, prepared.model.id, prepared.model.kind, task_id=task_id)
            await moderator.check_images(subject, await resolved.image_uris(media.storage))
        except BaseException:
            await media.storage.delete_prefix(input_prefix(task_id))
            raise
    pricing, params = prepared.model.pricing, resolved.params
    prepared = dataclasses.replace(prepared, params=params, hold=cost(pricing, worst_case_usage(pricing.unit, params)))
    # The fetched files are written while the task and its hold are inserted; its job waits for them.
    writing = asyncio.ensure_future(resolved.write(media.storage))
    created = False
    try:
        task, created = await _create(
            db,
            queue,
            principal,
            prepared,
            task_id,
            key,
            request_hash,
            files=writing,
            background=background,
            events=events,
        )
    finally:
        if not created:  # refused (credits), or a replayed key's first task: these copies of the files go
            with contextlib.suppress(Exception):
                await writing
            await media.storage.delete_prefix(input_prefix(task_id))
    return task, created


async def _create(
    db: Database,
    queue: JobQueue,
    principal: Principal,
    prepared: PreparedTask,
    task_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    files: asyncio.Future[None] | None = None,
    background: BackgroundTasks | None = None,
    events: TaskEvents | None = None,
) -> tuple[TaskRecord, bool]:
    """Insert the task with its hold (or find the one its idempotency key made) and hand out its job, once
    ``files`` (its input files being written) are in storage: in ``background`` when given."""
    new = new_task(principal, prepared, task_id)
    try:
        if key is None and not needs_spend_reservation(principal):
            # The common path: group-committed with the other submits under way (one statement when alone).
            task = await task_creations(db).submit(new)
        else:
            async with db.transaction() as conn:
                if key is not None and not await _claim_idempotency_key(conn, principal, key, request_hash):
                    raise _Replay
                task = await insert_task_and_hold(conn, new)
                await reserve_key_spend(conn, principal, new.hold_id, new.credits_held)  # the key's spend cap
                if key is not None:
                    await conn.execute(
                        "UPDATE idempotency_records SET task_id = $3 WHERE account_id = $1 AND key = $2",
                        principal.account_id,
                        key,
                        task_id,
                    )
    except _Replay:
        return await _replayed_task(db, principal, key or "", request_hash), False
    # logs: with the request id (shared.infra.logs), this line links the request to the task's worker lines
    log.info("task created", extra={"task_id": str(task.id), "model": task.model})
    if events is not None:
        await events.publish(TASK_QUEUED, task_id=task.id, account_id=task.account_id)
    if files is not None and background is not None:
        # The answer does not wait for the input files' writes: the job is handed out once they are done.
        background.spawn(_hand_out(db, queue, task.id, files, events), name=f"inputs of task {task.id}")
    elif not await _hand_out(db, queue, task.id, files, events):
        return await get_task(db, principal.account_id, task.id), True
    return task, True


async def _hand_out(
    db: Database,
    queue: JobQueue,
    task_id: uuid.UUID,
    files: asyncio.Future[None] | None,
    events: TaskEvents | None = None,
) -> bool:
    """Enqueue the task's job once its input files (if any) are stored; False when they could not be: the task
    cannot run without them and ends at once, its hold voided."""
    if files is not None:
        try:
            await files
        except OSError as exc:
            log.error("task %s: its input files could not be stored: %r", task_id, exc)
            await lifecycle.fail(
                db,
                task_id,
                code="input_storage_failed",
                message="the input files could not be stored",
                events=events,
            )
            return False
    try:
        await queue.enqueue(jobs.run_task(task_id))
    except (OSError, ConnectionError, TimeoutError, RedisError) as exc:
        # The task is safely queued in PostgreSQL; the sweep enqueues it once Redis is back.
        log.warning("enqueue failed for task %s, the sweep will retry: %s", task_id, exc)
    return True


def new_task(principal: Principal, prepared: PreparedTask, task_id: uuid.UUID, *, batch_work: bool = False) -> NewTask:
    """The row to insert for a prepared submit of ``principal``, with its hold of the worst-case price."""
    return NewTask(
        id=task_id, account_id=principal.account_id, api_key_id=principal.api_key_id, model=prepared.model.id,
        kind=prepared.model.kind, params=prepared.params, metadata=prepared.metadata,
        webhook_url=prepared.webhook_url, credits_held=prepared.hold, max_runtime_s=float(prepared.model.max_runtime_s),
        batch_work=batch_work,
    )  # fmt: skip


async def _claim_idempotency_key(conn: Connection, principal: Principal, key: str, request_hash: str) -> bool:
    try:
        inserted = await conn.fetchval(
            """
            INSERT INTO idempotency_records (id, account_id, key, request_hash)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (account_id, key) DO NOTHING
            RETURNING id
            """,
            uuid7(),
            principal.account_id,
            key,
            request_hash,
        )
    except asyncpg.UniqueViolationError:  # pragma: no cover - ON CONFLICT covers it
        return False
    return inserted is not None


async def idempotency_key_used(db: Database, account_id: uuid.UUID, key: str) -> bool:
    """Has a submit with this Idempotency-Key created its task already? (Its retry starts nothing.)"""
    found = await db.fetchval(
        "SELECT 1 FROM idempotency_records WHERE account_id = $1 AND key = $2 AND task_id IS NOT NULL",
        account_id,
        key,
    )
    return found is not None


async def _replayed_task(db: Database, principal: Principal, key: str, request_hash: str) -> TaskRecord:
    row = await db.fetchrow(
        """
        SELECT r.request_hash, t.*
        FROM idempotency_records r JOIN tasks t ON t.id = r.task_id
        WHERE r.account_id = $1 AND r.key = $2
        """,
        principal.account_id,
        key,
    )
    if row is None:  # pragma: no cover - the record was committed by the transaction we collided with
        raise Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_progress")
    if row["request_hash"] != request_hash:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body",
            code="idempotency_key_reused",
            param="Idempotency-Key",
        )
    return TASK_ROWS.from_row(row)


def submission_hash(submission: TaskSubmission) -> str:
    canonical = to_json(
        {
            "model": submission.model,
            "input": submission.input,
            "webhook_url": submission.webhook_url,
            "metadata": submission.metadata,
        }
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be an object of string values", param="metadata")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidInput(f"metadata may have at most {MAX_METADATA_KEYS} keys", param="metadata")
    for key, value in metadata.items():
        if not (0 < len(key) <= MAX_METADATA_KEY):
            raise InvalidInput(f"metadata keys must be 1-{MAX_METADATA_KEY} characters", param=f"metadata.{key}")
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise InvalidInput(
                f"metadata values must be strings of at most {MAX_METADATA_VALUE} characters",
                param=f"metadata.{key}",
            )
    return {key: without_keys(value) for key, value in metadata.items()}  # keys are too short to hold an API key


def _check_webhook_url(url: str | None) -> str | None:
    """The syntax only; ``submit_task`` resolves the host and checks its addresses (the URL guard)."""
    if url is None:
        return None
    return parse_url(url, param="webhook_url").url
