"""Billing of synchronous requests (chat completions): a hold before the upstream call, settlement after.

Both are on the hot path of every completion, so each is one round trip:

* ``place_request_hold``: ``ledger_place_hold`` (migration m0003) with no task; a key with a spend cap also
  reserves the amount on the key, in the same transaction (``shared.accounts.key_policy``).
* ``settle_request``: one statement that resolves the hold (``ledger_resolve_hold``, m0004: charge what was
  used, release the rest), adds the charge to the key's ``spent`` and releases its spend-cap reservation, and
  writes the usage record keyed by the request id. The hold's compare-and-set makes a second settlement of
  the same request a no-op: whatever path ends a request (success, upstream failure, client gone), it is
  charged exactly once.

Under load, the holds and the settlements that concurrent requests of one process make are group-committed
(``shared.infra.group_commit``): one statement places a batch of holds (``ledger_place_holds``, m0700: a refusal is
that item's outcome, not the batch's error) and one settles a batch (``_SETTLE_MANY``), each in account order
so that concurrent batches cannot deadlock on the account locks. At low load (nothing else under way) a
request takes the single-item statement above directly, without the batching machinery. A batch that
PostgreSQL refuses (a deadlock or serialization failure after a couple of retries, or any other error)
changed nothing, so its requests are then billed one by one; an error that leaves the outcome unknown (the
connection lost) is every caller's error, as it would be without batching. Holds for keys with a spend cap
(a transaction with the key's reservation) are not batched.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from shared.accounts.key_policy import key_spend_sql, needs_spend_reservation, reserve_key_spend
from shared.accounts.keys import Principal
from shared.infra.db import Database, to_json
from shared.infra.group_commit import GroupCommit
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS
from shared.ledger import hold_errors, hold_refusal
from shared.usage import record_request_usage

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 32  # items per statement (ledger_place_holds takes at most 64: one subtransaction each)
BATCH_RETRIES = 2  # after a deadlock or serialization failure, before billing the items one by one

_PLACE = "SELECT ledger_place_hold($1, $2, $3, $4, $5, $6)"
_PLACE_MANY = "SELECT item, outcome, detail FROM ledger_place_holds($1, $2, $3, $4, $5)"

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

# _SETTLE for many holds (distinct ones): resolved one after the other in account order, the charges and
# released spend-cap reservations summed per key (a key belongs to one account, whose lock this transaction
# holds by then), one usage record per resolved hold. Returns (usage record id, credits) per record written.
_SETTLE_MANY = """
WITH items AS MATERIALIZED (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::uuid[], $7::uuid[],
                         $8::uuid[], $9::uuid[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::integer[], $16::text[], $17::uuid[])
        AS i(hold_id, account_id, charge, resolution, description, charge_entry_id, release_entry_id, api_key_id,
             usage_id, model, provider, kind, status, units, latency_ms, source, request_id)
    ORDER BY i.account_id, i.hold_id
), resolved AS MATERIALIZED (
    SELECT i.usage_id, i.hold_id, r.account_id, i.api_key_id, r.charged, i.model, i.provider, i.kind, i.status,
           i.units, i.latency_ms, i.source, i.request_id
    FROM items i
    CROSS JOIN LATERAL ledger_resolve_hold(i.hold_id, NULL, i.charge, i.resolution, i.description,
                                           i.charge_entry_id, i.release_entry_id) r
), released_key_hold AS (
    DELETE FROM api_key_holds h USING resolved WHERE h.hold_id = resolved.hold_id
    RETURNING resolved.api_key_id, h.amount
), key_spend AS (
    UPDATE api_keys SET spent = spent + per_key.charged,
                        cap_held = cap_held - COALESCE((SELECT sum(amount) FROM released_key_hold r
                                                        WHERE r.api_key_id = per_key.api_key_id), 0)
    FROM (SELECT api_key_id, sum(charged) AS charged FROM resolved GROUP BY api_key_id) per_key
    WHERE api_keys.id = per_key.api_key_id
)
INSERT INTO usage_records
    (id, account_id, api_key_id, task_id, model, provider, kind, status, units, credits, latency_ms, source,
     request_id)
SELECT usage_id, account_id, api_key_id, NULL, model, provider, kind, status, units::jsonb, charged, latency_ms,
       source, request_id
FROM resolved
ON CONFLICT DO NOTHING
RETURNING id, credits
"""


# _SETTLE_MANY's parameters, $1 to $17: one array per _Settlement attribute
_SETTLE_MANY_COLUMNS = (
    "hold_id", "account_id", "charge", "resolution", "description", "charge_entry_id", "release_entry_id",
    "api_key_id", "usage_id", "model", "provider", "kind", "status", "units", "latency_ms", "source", "request_id",
)  # fmt: skip


def _columns(items: Sequence[Any], *fields: str) -> list[list[Any]]:
    """One array per attribute, in order: the parameters of a statement that ``unnest``s a batch."""
    return [[getattr(item, field) for item in items] for field in fields]


@dataclass(frozen=True, slots=True)
class _Hold:
    hold_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    entry_id: uuid.UUID
    description: str


@dataclass(frozen=True, slots=True)
class _Settlement:
    hold_id: uuid.UUID
    account_id: uuid.UUID
    charge: int
    description: str
    charge_entry_id: uuid.UUID
    release_entry_id: uuid.UUID
    api_key_id: uuid.UUID | None
    usage_id: uuid.UUID
    model: str
    provider: str | None
    kind: str
    status: str
    units: str  # JSON
    latency_ms: int | None
    source: str
    request_id: uuid.UUID

    @property
    def resolution(self) -> str:
        return "posted" if self.charge > 0 else "voided"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.DeadlockDetectedError | asyncpg.SerializationError)


class RequestBilling:
    """The group commits of one process's request holds and settlements, bound to one pool and event loop
    (``request_billing(db)``)."""

    def __init__(self, db: Database) -> None:
        self.pool = db.pool  # not the Database: it is the key of the weak mapping below
        self.loop = asyncio.get_running_loop()
        # At low load a call runs the single-item statement itself (``alone``), with no batching machinery.
        self.holds: GroupCommit[_Hold, uuid.UUID] = GroupCommit(self._place_holds, alone=self._place_single)
        self.settlements: GroupCommit[_Settlement, int | None] = GroupCommit(self._settle, alone=self._settle_single)
        self.batches = {"holds": 0, "settlements": 0, "retries": 0, "fallbacks": 0}  # for tests and benchmarks

    # -- holds -------------------------------------------------------------------------------------------

    async def _place_single(self, hold: _Hold) -> uuid.UUID:
        async with hold_errors(hold.amount):
            await self.pool.execute(_PLACE, hold.hold_id, hold.account_id, hold.amount, None, hold.entry_id,
                                    hold.description)  # fmt: skip
        return hold.hold_id

    async def _place_one(self, hold: _Hold) -> uuid.UUID | Exception:
        try:
            return await self._place_single(hold)
        except Exception as exc:
            return exc

    async def _place_holds(self, holds: list[_Hold]) -> list[uuid.UUID | Exception]:
        if len(holds) == 1:
            return [await self._place_one(holds[0])]
        return await _in_chunks(holds, self._place_chunk)

    async def _place_chunk(self, holds: list[_Hold]) -> list[uuid.UUID | Exception]:
        rows = await self._batch(
            lambda: self.pool.fetch(
                _PLACE_MANY, *_columns(holds, "hold_id", "account_id", "amount", "entry_id", "description")
            ),
        )
        if rows is None:
            return list(await asyncio.gather(*(self._place_one(hold) for hold in holds)))
        self.batches["holds"] += 1
        results: list[uuid.UUID | Exception] = [hold.hold_id for hold in holds]
        for row in rows:
            if row["outcome"] != "placed":
                hold = holds[row["item"] - 1]
                state = "CD402" if row["outcome"] == "insufficient" else "CD403"
                refusal = hold_refusal(state, row["detail"] or "", hold.amount)
                assert refusal is not None
                results[row["item"] - 1] = refusal
        return results

    # -- settlements -------------------------------------------------------------------------------------

    async def _settle_single(self, item: _Settlement) -> int | None:
        charged: int | None = await self.pool.fetchval(
            _SETTLE,
            item.hold_id, item.charge, item.resolution, item.description, item.charge_entry_id,
            item.release_entry_id, item.api_key_id, item.usage_id, item.model, item.provider, item.kind,
            item.status, item.units, item.latency_ms, item.source, item.request_id,
        )  # fmt: skip
        return charged

    async def _settle_one(self, item: _Settlement) -> int | Exception | None:
        try:
            return await self._settle_single(item)
        except Exception as exc:
            return exc

    async def _settle(self, items: list[_Settlement]) -> list[int | Exception | None]:
        # The same hold twice in a batch: the first settles it, the others find it settled (as they would have
        # one after the other).
        first: dict[uuid.UUID, int] = {}
        for n, item in enumerate(items):
            first.setdefault(item.hold_id, n)
        distinct = [items[n] for n in first.values()]
        if len(distinct) == 1:
            settled = [await self._settle_one(distinct[0])]
        else:
            settled = await _in_chunks(distinct, self._settle_chunk)
        by_position = dict(zip(first.values(), settled, strict=True))
        return [by_position.get(n) for n in range(len(items))]

    async def _settle_chunk(self, items: list[_Settlement]) -> list[int | Exception | None]:
        rows = await self._batch(
            lambda: self.pool.fetch(_SETTLE_MANY, *_columns(items, *_SETTLE_MANY_COLUMNS)),
        )
        if rows is None:
            return list(await asyncio.gather(*(self._settle_one(item) for item in items)))
        self.batches["settlements"] += 1
        charged = {row["id"]: row["credits"] for row in rows}
        return [charged.get(item.usage_id) for item in items]

    async def _batch(self, run: Callable[[], Awaitable[list[asyncpg.Record]]]) -> list[asyncpg.Record] | None:
        """Run one batch statement: its rows, or None when PostgreSQL refused it (the statement, a transaction of
        its own, then changed nothing) and the items are to be billed one by one. Any other error (the outcome
        unknown) is raised to every caller of the batch."""
        for attempt in range(BATCH_RETRIES + 1):
            try:
                return await run()
            except asyncpg.PostgresError as exc:
                if _retryable(exc) and attempt < BATCH_RETRIES:
                    self.batches["retries"] += 1
                    await asyncio.sleep(0.002 * (attempt + 1))
                    continue
                self.batches["fallbacks"] += 1
                return None
        raise AssertionError("unreachable")


async def _in_chunks(
    items: list[Item], run: Callable[[list[Item]], Awaitable[list[Result | Exception]]]
) -> list[Result | Exception]:
    """``run`` over chunks of at most MAX_BATCH items, concurrently; a chunk that raises is the error of each
    of its items only (the other chunks' outcomes are kept)."""
    chunks = [items[start : start + MAX_BATCH] for start in range(0, len(items), MAX_BATCH)]
    outcomes = await asyncio.gather(*(run(chunk) for chunk in chunks), return_exceptions=True)
    results: list[Result | Exception] = []
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            results.extend([outcome] * len(chunk))
        else:
            results.extend(outcome)
    return results


_billing: weakref.WeakKeyDictionary[Database, RequestBilling] = weakref.WeakKeyDictionary()


def request_billing(db: Database) -> RequestBilling:
    """The batcher of ``db``'s pool in the running event loop (a new one if either changed)."""
    billing = _billing.get(db)
    if billing is None or billing.pool is not db.pool or billing.loop is not asyncio.get_running_loop():
        billing = _billing[db] = RequestBilling(db)
    return billing


async def place_request_hold(db: Database, principal: Principal, amount: int, description: str) -> uuid.UUID:
    """Set ``amount`` aside for one request. Raises ``InsufficientCredits`` / ``SpendCapExceeded``."""
    hold_id = uuid7()
    if not needs_spend_reservation(principal):
        hold = _Hold(hold_id, principal.account_id, amount, uuid7(), description)
        return await request_billing(db).holds.submit(hold)
    async with db.transaction() as conn:
        async with hold_errors(amount):
            await conn.execute(_PLACE, hold_id, principal.account_id, amount, None, uuid7(), description)
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
    item = _Settlement(
        hold_id=hold_id, account_id=principal.account_id, charge=charge, description=f"{model} {source}",
        charge_entry_id=uuid7(), release_entry_id=uuid7(), api_key_id=principal.api_key_id, usage_id=uuid7(),
        model=model, provider=provider, kind=kind, status=status, units=to_json(units), latency_ms=latency_ms,
        source=source, request_id=request_id,
    )  # fmt: skip
    charged = await request_billing(db).settlements.submit(item)
    if charged:  # metrics: credits charged for synchronous requests too
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
