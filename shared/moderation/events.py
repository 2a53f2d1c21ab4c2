"""Moderation events: each block or flag, with a redacted excerpt of the text (the evidence staff review, purged
``MODERATION_EVIDENCE_RETENTION_S`` later); strikes (uncleared blocks in ``MODERATION_STRIKE_WINDOW_S``) that
suspend the account at ``MODERATION_STRIKES_TO_SUSPEND``; the usage record of a blocked request; metrics."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.accounts.key_cache import publish_invalidation
from shared.accounts.keys import Principal
from shared.accounts.redaction import without_keys
from shared.infra.db import Connection, Database
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS
from shared.moderation.categories import BLOCKED, FLAGGED
from shared.moderation.decisions import Decision, Hit
from shared.staff import Actor, audit
from shared.usage import record_request_usage

log = logging.getLogger(__name__)

# Who suspends an account for its strikes, as the staff audit log records it: the rule, not a staff member.
STRIKE_RULE = Actor(None, "system", "strike_rule", name="moderation strike rule")

EXCERPT_CHARS = 280
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_LONG_NUMBER = re.compile(r"\d(?:[ -]?\d){7,}")  # card, phone and account numbers


@dataclass(frozen=True, slots=True)
class StrikePolicy:
    strikes_to_suspend: int  # 0: never suspend automatically
    window_s: int


@dataclass(frozen=True, slots=True)
class Subject:
    """What was moderated: whose request (account, API key), on which route (its usage source) and model, input or
    output (of ``task_id``, for a task: the id a blocked submit's task would have had)."""

    account_id: uuid.UUID
    api_key_id: uuid.UUID | None
    source: str
    model: str
    kind: str
    stage: str = "input"
    task_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None  # a synchronous request's id: its usage record's ``request_id``

    @classmethod
    def of(cls, principal: Principal, source: str, model: str, kind: str, **more: Any) -> Subject:
        return cls(principal.account_id, principal.api_key_id, source, model, kind, **more)


def redacted_excerpt(text: str) -> str:
    """The evidence kept: the start of the text, without API keys, mail addresses or long numbers."""
    text = without_keys(text[: EXCERPT_CHARS * 2])
    text = _LONG_NUMBER.sub("[number]", _EMAIL.sub("[email]", text))
    return " ".join(text.split())[:EXCERPT_CHARS]


_INSERT_EVENT = """
INSERT INTO moderation_events (id, account_id, api_key_id, source, stage, category, action, checker, model, task_id,
                               policy_version, excerpt, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
"""


async def _insert_events(
    conn: Connection | Database, subject: Subject, hits: Sequence[tuple[str, Hit]], texts: Sequence[str], version: int
) -> None:
    rows = [
        (uuid7(), subject.account_id, subject.api_key_id, subject.source, subject.stage, hit.category, action,
         hit.checker, subject.model, subject.task_id, version, redacted_excerpt(texts[hit.text_index]),
         subject.request_id)
        for action, hit in hits
    ]  # fmt: skip
    await (conn.pool if isinstance(conn, Database) else conn).executemany(_INSERT_EVENT, rows)
    for action, hit in hits:
        labels = {"source": subject.source, "stage": subject.stage, "category": hit.category, "action": action}
        METRICS.inc("conduit_moderation_decisions", labels)


async def record_flags(db: Database, subject: Subject, decision: Decision, texts: Sequence[str], version: int) -> None:
    """The events of a request that was served though flagged."""
    await _insert_events(db, subject, [(FLAGGED, hit) for hit in decision.flagged], texts, version)


async def record_block(
    db: Database,
    redis: Redis,
    strikes: StrikePolicy,
    subject: Subject,
    decision: Decision,
    texts: Sequence[str],
    version: int,
    latency_ms: int,
) -> None:
    """A blocked request or output: its events and, for a request, its ``blocked`` usage record, in one
    transaction; then, for a request, the strike count, which may suspend the account (a blocked output is the
    model's doing: no strike)."""
    assert decision.blocked is not None
    category = decision.blocked.category
    hits = [(BLOCKED, decision.blocked), *((FLAGGED, hit) for hit in decision.flagged)]
    async with db.transaction() as conn:
        await _insert_events(conn, subject, hits, texts, version)
        if subject.stage == "input":
            await record_request_usage(
                conn, request_id=subject.task_id or subject.request_id or uuid7(), source=subject.source,
                account_id=subject.account_id,
                api_key_id=subject.api_key_id, model=subject.model, provider=None, kind=subject.kind,
                status="blocked", units={}, credits=0, latency_ms=latency_ms, moderation_category=category,
            )  # fmt: skip
    if subject.stage == "input":
        await _count_strike(db, redis, strikes, subject.account_id, category)


async def strike_count(db: Database | Connection, account_id: uuid.UUID, window_s: int) -> int:
    """The account's uncleared blocked requests in the last ``window_s`` seconds."""
    count = await db.fetchval(
        """
        SELECT count(*) FROM moderation_events
        WHERE account_id = $1 AND action = 'blocked' AND stage = 'input' AND cleared_at IS NULL
          AND created_at > now() - make_interval(secs => $2)
        """,
        account_id,
        float(window_s),
    )
    return int(count or 0)


def suspension_reason(category: str) -> str:
    return (
        f"repeated requests refused under the content policy (last: {category}); appeal with POST "
        "/v1/moderation/appeals"
    )


async def _count_strike(
    db: Database, redis: Redis, strikes: StrikePolicy, account_id: uuid.UUID, category: str
) -> None:
    if strikes.strikes_to_suspend <= 0:
        return
    if await strike_count(db, account_id, strikes.window_s) < strikes.strikes_to_suspend:
        return
    reason = suspension_reason(category)
    after = {"status": "suspended", "strikes": strikes.strikes_to_suspend, "window_s": strikes.window_s}
    async with db.transaction() as conn:  # only an active account, once: concurrent strikes suspend it one time
        suspended = await conn.fetchval(
            "UPDATE accounts SET status = 'suspended', suspension_reason = $2, updated_at = now()"
            " WHERE id = $1 AND status = 'active' RETURNING id",
            account_id,
            reason,
        )
        if suspended is None:
            return
        await audit.record(conn, STRIKE_RULE, "account.suspend", "account", account_id, reason=reason,
                           before={"status": "active"}, after=after)  # fmt: skip
    await publish_invalidation(redis, f"account:{account_id}")
    METRICS.inc("conduit_moderation_suspensions", {"category": category})
    log.warning("account %s suspended automatically: %d content-policy strikes", account_id,
                strikes.strikes_to_suspend)  # fmt: skip


async def purge_evidence(db: Database, *, retention_s: int, limit: int = 5000) -> int:
    """Drop the excerpts of events older than ``retention_s``; returns how many were purged."""
    purged = await db.fetchval(
        """
        WITH due AS (
            SELECT id FROM moderation_events
            WHERE excerpt IS NOT NULL AND created_at < now() - make_interval(secs => $1)
            ORDER BY created_at LIMIT $2
        )
        , purged AS (
            UPDATE moderation_events e SET excerpt = NULL, excerpt_purged_at = now()
            FROM due WHERE e.id = due.id RETURNING 1
        )
        SELECT count(*) FROM purged
        """,
        float(retention_s),
        limit,
    )
    return int(purged or 0)
