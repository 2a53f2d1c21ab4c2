"""Sending one delivery attempt: claim, sign, POST through the URL guard, log, schedule the next attempt.

``deliver`` is what the worker job calls; it is safe to call any number of times (arq delivers at least once,
the sweep re-enqueues): a delivery is claimed with a lease (``locked_until``) only when it is pending and due,
so two jobs never send the same attempt. An attempt is logged when it starts and completed when it ends; an
attempt whose worker died is closed by the next claim as lost, and that claim sends the next attempt.

Outcomes: any 2xx is success. Anything else (3xx included: redirects are never followed), a timeout or a
connection error is a failed attempt, retried on ``RETRY_SCHEDULE_S`` until ``max_attempts``; on 429/503 a
``Retry-After`` header sets the delay instead. ``410 Gone`` ends the delivery and disables its endpoint; an
endpoint whose attempts have failed for ``DISABLE_AFTER`` without a success in between is disabled too.

Time comes from ``WebhookRuntime.clock`` (tests inject a clock to walk the schedule without waiting). The
``webhook-timestamp`` header is always the real time of sending: receivers compare it with their clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from shared.infra.db import Connection, Database, from_json
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS
from shared.infra.storage import UrlSigner
from shared.infra.urlguard import UrlNotAllowed, read_capped
from shared.ledger.money import Credits
from shared.tasks.records import TASK_ROWS
from shared.tasks.views import Task, public_task
from shared.webhooks import RETRY_SCHEDULE_S
from shared.webhooks.endpoints import signing_secret
from shared.webhooks.signing import SecretSet, signed_headers

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

READ_CAP_BYTES = 64 * 1024
EXCERPT_BYTES = 1024
MAX_RETRY_AFTER_S = 24 * 3600
DISABLE_AFTER = dt.timedelta(days=5)
LOST_ATTEMPT = "no response recorded: the worker sending this attempt stopped before it finished"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class WebhookRuntime:
    db: Database
    signer: UrlSigner
    http: httpx.AsyncClient  # from ``UrlGuard.client()``: guarded connections, no redirects
    timeout_s: float
    lease_s: float
    clock: Clock = utcnow


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the caller should do next: nothing, run again in ``not_due_in`` s, or schedule the next attempt."""

    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    not_due_in: float | None = None


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    event_id: uuid.UUID
    account_id: uuid.UUID
    endpoint_id: uuid.UUID | None
    url: str
    attempts: int
    max_attempts: int
    endpoint_status: str | None
    secrets: SecretSet | None


@dataclass(frozen=True, slots=True)
class _Response:
    status_code: int | None = None
    error: str | None = None
    body: str | None = None
    retry_after_s: float | None = None
    latency_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_json = msgspec.json.Encoder(enc_hook=lambda value: _encode_extra(value))


def _encode_extra(value: Any) -> Any:
    if isinstance(value, Credits):
        return msgspec.Raw(str(value).encode())  # a JSON number, as the API renders it
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def event_body(event_id: uuid.UUID, event_type: str, created_at: dt.datetime, data: Task | dict[str, Any]) -> bytes:
    """The request body: the event and the task exactly as ``GET /v1/tasks/{id}`` shows it (an account event:
    its own payload)."""
    return _json.encode({"id": str(event_id), "type": event_type, "timestamp": created_at, "data": data})


async def deliver(rt: WebhookRuntime, delivery_id: uuid.UUID) -> Outcome:
    now = rt.clock()
    claimed = await _claim(rt, delivery_id, now)
    if claimed is None:
        return await _why_not(rt.db, delivery_id, now)
    if claimed.endpoint_id is not None and claimed.endpoint_status != "enabled":
        await _give_up(rt.db, claimed, f"not sent: the endpoint is {claimed.endpoint_status or 'gone'}")
        return Outcome()
    attempt = claimed.attempts + 1
    attempt_id = await _start_attempt(rt.db, claimed, attempt, now)
    try:
        msg_id, body, secrets = await _message(rt, claimed, now)
    except Exception:  # a bug must cost an attempt, not loop on the same one forever
        log.exception("could not build webhook delivery %s", claimed.id)
        response = _Response(error="internal error while preparing the message; it has been logged")
    else:
        headers = {"content-type": "application/json", **signed_headers(secrets, msg_id, int(time.time()), body)}
        response = await _post(rt, claimed.url, headers, body)
    return await _finish(rt, claimed, attempt, attempt_id, response)


async def _claim(rt: WebhookRuntime, delivery_id: uuid.UUID, now: dt.datetime) -> _Claimed | None:
    row = await rt.db.fetchrow(
        """
        WITH claimed AS (
            UPDATE webhook_deliveries SET locked_until = $2 + make_interval(secs => $3)
            WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2
              AND (locked_until IS NULL OR locked_until <= $2)
            RETURNING id, event_id, account_id, endpoint_id, url, attempts, max_attempts
        ), lost AS (
            UPDATE webhook_attempts SET finished_at = $2, error = $4
            WHERE delivery_id = $1 AND finished_at IS NULL AND EXISTS (SELECT 1 FROM claimed)
        )
        SELECT c.*, e.status AS endpoint_status, e.url AS endpoint_url, e.secret, e.previous_secret,
               e.previous_secret_expires_at
        FROM claimed c LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id
        """,
        delivery_id,
        now,
        rt.lease_s,
        LOST_ATTEMPT,
    )
    if row is None:
        return None
    endpoint = row["endpoint_id"] is not None and row["secret"] is not None
    secrets = SecretSet(row["secret"], row["previous_secret"], row["previous_secret_expires_at"])
    return _Claimed(
        id=row["id"],
        event_id=row["event_id"],
        account_id=row["account_id"],
        endpoint_id=row["endpoint_id"],
        # An endpoint's deliveries go to its current URL (it may have been edited since the event).
        url=row["endpoint_url"] if endpoint else row["url"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        endpoint_status=row["endpoint_status"],
        secrets=secrets if endpoint else None,
    )


async def _why_not(db: Database, delivery_id: uuid.UUID, now: dt.datetime) -> Outcome:
    """Not claimed: finished, taken by another job (that job schedules what follows), or not due yet."""
    row = await db.fetchrow(
        "SELECT status, next_attempt_at, locked_until FROM webhook_deliveries WHERE id = $1", delivery_id
    )
    if row is None or row["status"] != "pending" or (row["locked_until"] and row["locked_until"] > now):
        return Outcome()
    return Outcome(not_due_in=max(0.0, (row["next_attempt_at"] - now).total_seconds()))


async def _message(rt: WebhookRuntime, claimed: _Claimed, now: dt.datetime) -> tuple[str, bytes, list[str]]:
    row = await rt.db.fetchrow(
        """
        SELECT e.type AS event_type, e.created_at AS event_created_at, e.task_id AS event_task_id,
               e.data AS event_data, t.*
        FROM webhook_events e LEFT JOIN LATERAL jsonb_populate_record(NULL::tasks, e.data) t ON e.task_id IS NOT NULL
        WHERE e.id = $1
        """,
        claimed.event_id,
    )
    assert row is not None  # the delivery references it
    if row["event_task_id"] is None:  # an account event: its payload as recorded
        data = from_json(row["event_data"])
    else:
        data = public_task(TASK_ROWS.from_row(row), rt.signer)  # output URLs signed afresh for this attempt
    body = event_body(claimed.event_id, row["event_type"], row["event_created_at"], data)
    secrets = claimed.secrets or (await signing_secret(rt.db, claimed.account_id)).secrets
    return str(claimed.event_id), body, secrets.signing(now)


async def _start_attempt(db: Database, claimed: _Claimed, attempt: int, now: dt.datetime) -> uuid.UUID:
    attempt_id = uuid7()
    await db.execute(
        """
        WITH delivery AS (
            UPDATE webhook_deliveries SET attempts = $3, last_attempt_at = $5, url = $4 WHERE id = $2 RETURNING id
        )
        INSERT INTO webhook_attempts (id, delivery_id, attempt, url, started_at)
        SELECT $1, delivery.id, $3, $4, $5 FROM delivery
        """,
        attempt_id,
        claimed.id,
        attempt,
        claimed.url,
        now,
    )
    return attempt_id


async def _post(rt: WebhookRuntime, url: str, headers: dict[str, str], body: bytes) -> _Response:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(rt.timeout_s):
            async with rt.http.stream("POST", url, content=body, headers=headers) as response:
                data, _ = await read_capped(response, READ_CAP_BYTES)
    except (TimeoutError, httpx.TimeoutException):
        return _Response(error=f"timed out after {rt.timeout_s:g} s", latency_ms=elapsed())
    except UrlNotAllowed as exc:
        return _Response(error=f"refused by the URL guard: {exc.message}", latency_ms=elapsed())
    except httpx.ConnectError as exc:
        return _Response(error=f"could not connect: {exc or type(exc).__name__}", latency_ms=elapsed())
    except httpx.HTTPError as exc:
        return _Response(error=f"request failed: {exc or type(exc).__name__}", latency_ms=elapsed())
    code = response.status_code
    error = None
    if 300 <= code < 400:
        location = response.headers.get("location", "")
        error = f"HTTP {code}: redirect not followed" + (f" (Location: {location[:500]})" if location else "")
    elif not 200 <= code < 300:
        error = f"HTTP {code}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), time.time()) if code in (429, 503) else None
    excerpt = data[:EXCERPT_BYTES].decode("utf-8", errors="replace") if data else None
    return _Response(code, error, excerpt, retry_after, elapsed())


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped at a day; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = when.timestamp() - now_epoch
    return min(max(seconds, 1.0), float(MAX_RETRY_AFTER_S))


def next_delay_s(attempt: int, retry_after_s: float | None) -> float:
    """Delay after failed attempt ``attempt`` (1-based) before the next one."""
    if retry_after_s is not None:
        return retry_after_s
    return float(RETRY_SCHEDULE_S[min(attempt, len(RETRY_SCHEDULE_S) - 1)])


async def _finish(
    rt: WebhookRuntime, claimed: _Claimed, attempt: int, attempt_id: uuid.UUID, response: _Response
) -> Outcome:
    now = rt.clock()
    gone = response.status_code == 410
    next_at: dt.datetime | None = None
    if response.ok:
        status = "delivered"
    elif gone or attempt >= claimed.max_attempts:
        status = "failed"
    else:
        status = "pending"
        next_at = now + dt.timedelta(seconds=next_delay_s(attempt, response.retry_after_s))
    async with rt.db.transaction() as conn:
        await conn.execute(
            """
            UPDATE webhook_attempts SET finished_at = $2, status_code = $3, latency_ms = $4, error = $5,
                   response_body = $6
            WHERE id = $1
            """,
            attempt_id,
            now,
            response.status_code,
            response.latency_ms,
            response.error,
            response.body,
        )
        updated = await conn.fetchval(
            """
            UPDATE webhook_deliveries
            SET status = $3::text, next_attempt_at = $4, locked_until = NULL, last_status_code = $5,
                last_error = $6, delivered_at = CASE WHEN $3::text = 'delivered' THEN $7 ELSE delivered_at END
            WHERE id = $1 AND attempts = $2 AND status = 'pending'
            RETURNING id
            """,
            claimed.id,
            attempt,
            status,
            next_at,
            response.status_code,
            response.error,
            now,
        )
        if updated is None:  # a later attempt took over (our lease ran out): it owns the delivery now
            return Outcome()
        if claimed.endpoint_id is not None:
            await _endpoint_health(conn, claimed.endpoint_id, response.ok, gone, now)
    # metrics: every attempt's outcome; "retrying" when another attempt follows
    METRICS.inc("conduit_webhook_deliveries", {"outcome": "retrying" if status == "pending" else status})
    if status != "pending":
        log.info("webhook delivery %s %s after %d attempt(s)", claimed.id, status, attempt)
    return Outcome(attempts=attempt, next_attempt_at=next_at)


async def _endpoint_health(conn: Connection, endpoint_id: uuid.UUID, ok: bool, gone: bool, now: dt.datetime) -> None:
    if ok:
        await conn.execute(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", endpoint_id
        )
        return
    disabled = await conn.fetchrow(
        """
        UPDATE webhook_endpoints
        SET failing_since = COALESCE(failing_since, $2),
            status = CASE WHEN $3 OR COALESCE(failing_since, $2) <= $2 - $4::interval THEN 'disabled' ELSE status END,
            disabled_reason = CASE WHEN $3 THEN 'gone'
                                   WHEN COALESCE(failing_since, $2) <= $2 - $4::interval THEN 'failing'
                                   ELSE disabled_reason END,
            disabled_at = CASE WHEN $3 OR COALESCE(failing_since, $2) <= $2 - $4::interval THEN $2
                               ELSE disabled_at END,
            updated_at = $2
        WHERE id = $1 AND status = 'enabled'
        RETURNING status, disabled_reason
        """,
        endpoint_id,
        now,
        gone,
        DISABLE_AFTER,
    )
    if disabled is not None and disabled["status"] == "disabled":
        log.warning("webhook endpoint %s disabled (%s)", endpoint_id, disabled["disabled_reason"])


async def _give_up(db: Database, claimed: _Claimed, reason: str) -> None:
    await db.execute(
        """
        UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, locked_until = NULL, last_error = $2
        WHERE id = $1 AND status = 'pending'
        """,
        claimed.id,
        reason,
    )
