"""Billing of synchronous requests (chat completions): a hold before the upstream call, settlement after.

Both are on the hot path of every completion, so each is one round trip:

* ``place_request_hold``: ``ledger_place_hold`` (migration m0003) with no task; a key with a spend cap also
  reserves the amount on the key, in the same transaction (``shared.accounts.limits``).
* ``settle_request``: one statement that resolves the hold (``ledger_resolve_hold``, m0004: charge what was
  used, release the rest), adds the charge to the key's ``spent`` and releases its spend-cap reservation, and
  writes the usage record keyed by the request id. The hold's compare-and-set makes a second settlement of
  the same request a no-op: whatever path ends a request (success, upstream failure, client gone), it is
  charged exactly once.
"""

from __future__ import annotations

import uuid
from typing import Any

from shared.accounts.keys import Principal
from shared.accounts.limits import key_spend_sql, needs_spend_reservation, reserve_key_spend
from shared.db import Database, to_json
from shared.ids import uuid7
from shared.ledger import hold_errors
from shared.metrics import METRICS
from shared.usage import record_request_usage

_SETTLE = f"""
WITH resolved AS (
    SELECT * FROM ledger_resolve_hold($1, NULL, $2, $3, $4, $5, $6)
), {key_spend_sql("$7")}
INSERT INTO usage_records
    (id, account_id, api_key_id, task_id, model, provider, kind, status, units, credits, latency_ms, source,
     request_id)
SELECT $8, resolved.account_id, $7, NULL, $9, $10, $11, $12, $13::jsonb, resolved.charged, $14, $15, $16
FROM resolved
ON CONFLICT DO NOTHING
RETURNING credits
"""


async def place_request_hold(db: Database, principal: Principal, amount: int, description: str) -> uuid.UUID:
    """Set ``amount`` aside for one request. Raises ``InsufficientCredits`` / ``SpendCapExceeded``."""
    hold_id = uuid7()
    args = (hold_id, principal.account_id, amount, None, uuid7(), description)
    if not needs_spend_reservation(principal):
        async with hold_errors(amount):
            await db.pool.execute("SELECT ledger_place_hold($1, $2, $3, $4, $5, $6)", *args)
        return hold_id
    async with db.transaction() as conn:
        async with hold_errors(amount):
            await conn.execute("SELECT ledger_place_hold($1, $2, $3, $4, $5, $6)", *args)
        await reserve_key_spend(conn, principal, hold_id, amount)
    return hold_id


async def settle_request(
    db: Database,
    *,
    hold_id: uuid.UUID,
    request_id: uuid.UUID,
    principal: Principal,
    charge: int,
    status: str,
    source: str,
    model: str,
    kind: str,
    provider: str | None,
    units: dict[str, Any],
    latency_ms: int,
) -> int | None:
    """Charge ``charge`` (capped at the hold; 0 voids it) and record the usage. Returns the credits charged,
    or None when the request was settled before."""
    description = f"{model} {source}"
    charged: int | None = await db.pool.fetchval(
        _SETTLE,
        hold_id, charge, "posted" if charge > 0 else "voided", description, uuid7(), uuid7(),
        principal.api_key_id, uuid7(), model, provider, kind, status, to_json(units), latency_ms, source, request_id,
    )  # fmt: skip
    if charged:  # metrics (issue 9): credits charged for synchronous requests too
        METRICS.inc("conduit_credits_charged", {"model": model}, charged / 1_000_000)
    return charged


async def void_abandoned_request_holds(db: Database, *, older_than_s: float, limit: int = 500) -> int:
    """Void the pending holds of synchronous requests (no task) older than ``older_than_s``; returns how many."""
    rows = await db.fetch(
        """
        SELECT h.id, e.description, r.api_key_id FROM holds h
        JOIN ledger_entries e ON e.hold_id = h.id AND e.kind = 'hold'
        LEFT JOIN api_key_holds r ON r.hold_id = h.id
        WHERE h.task_id IS NULL AND h.status = 'pending' AND h.created_at < now() - make_interval(secs => $1)
        ORDER BY h.created_at LIMIT $2
        """,
        float(older_than_s),
        limit,
    )
    voided = 0
    for row in rows:
        model = (row["description"] or "unknown").partition(" ")[0]
        charged = await db.pool.fetchval(
            _SETTLE,
            row["id"], 0, "voided", f"{model} request abandoned", uuid7(), uuid7(), row["api_key_id"], uuid7(),
            model, None, "text", "failed", "{}", None, "chat.completion", row["id"],
        )  # fmt: skip
        if charged is not None:
            voided += 1
    return voided


async def record_refused_request(
    db: Database,
    *,
    principal: Principal,
    source: str,
    model: str,
    kind: str,
    latency_ms: int,
    request_id: uuid.UUID | None = None,
) -> None:
    """The usage record of a request refused before anything was held (e.g. insufficient credits)."""
    await record_request_usage(
        db.pool,
        request_id=request_id or uuid7(),
        source=source,
        account_id=principal.account_id,
        api_key_id=principal.api_key_id,
        model=model,
        provider=None,
        kind=kind,
        status="failed",
        units={},
        credits=0,
        latency_ms=latency_ms,
    )
