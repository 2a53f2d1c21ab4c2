"""Billing of synchronous requests (chat completions): a hold before the upstream call, settlement after.

Both are on the hot path of every completion, so each is one round trip:

* ``place_request_hold``: ``holds.place_hold`` with no task; a key with a spend cap also reserves the amount
  on the key, in the same transaction (``spend_caps.reserve_key_spend``).
* ``settle_request``: ``settlement.settle_hold``, one statement that resolves the hold (charge what was used,
  release the rest), adds the charge to the key's ``spent`` and releases its spend-cap reservation, and
  writes the usage record keyed by the request id. The hold's compare-and-set makes a second settlement of
  the same request a no-op: whatever path ends a request (success, upstream failure, client gone), it is
  charged exactly once.

Under load, the holds and the settlements that concurrent requests of one process make are group-committed
(``shared.infra.group_commit``): one statement places a batch of holds (``holds.place_holds``: one update of an
account's row for its holds of the batch; a refusal is that item's outcome, not the batch's error) and one settles a
batch (``settlement.settle_holds``: one update of an account's row and of each lot for the batch), each taking its locks
in a fixed order so that concurrent batches cannot deadlock on them. At low load (nothing else under way) a request
takes the single-item statement above directly, without the batching machinery. A batch that PostgreSQL refuses (a
deadlock or serialization failure after a couple of retries, or any other error) changed nothing, so its requests are
then billed one by one (``shared.infra.db.batching``); an error that leaves the outcome unknown (the connection lost) is
every caller's error, as it would be without batching. Holds for keys with a spend cap (a transaction with the key's
reservation) are not batched.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from shared.infra.db import Connection, Database, to_json
from shared.infra.db.batching import PerPool, in_chunks, refusable
from shared.infra.group_commit import GroupCommit
from shared.infra.ids import uuid7
from shared.infra.metrics import METRICS
from shared.ledger.holds import NewHold, place_hold, place_holds
from shared.ledger.settlement import HoldResolution, Settlement, settle_hold, settle_holds
from shared.ledger.spend_caps import needs_spend_reservation, reserve_key_spend
from shared.usage import record_request_usage

if TYPE_CHECKING:
    from shared.accounts.keys import Principal


def _charged(resolution: HoldResolution | None) -> int | None:
    """What a settlement charged; None when its hold was settled before."""
    return resolution.charged if resolution is not None else None


class RequestBilling:
    """The group commits of one process's request holds and settlements, bound to one pool and event loop
    (``request_billing(db)``)."""

    def __init__(self, db: Database) -> None:
        self.pool = db.pool
        # At low load a call runs the single-item statement itself (``alone``), with no batching machinery.
        self.holds: GroupCommit[NewHold, uuid.UUID] = GroupCommit(self._place_holds, alone=self._place_single)
        self.settlements: GroupCommit[Settlement, int | None] = GroupCommit(self._settle, alone=self._settle_single)
        self.counts = {"holds": 0, "settlements": 0, "retries": 0, "fallbacks": 0}  # for tests and benchmarks

    # -- holds -------------------------------------------------------------------------------------------

    async def _place_single(self, hold: NewHold) -> uuid.UUID:
        return await place_hold(self.pool, hold)

    async def _place_one(self, hold: NewHold) -> uuid.UUID | Exception:
        try:
            return await self._place_single(hold)
        except Exception as exc:
            return exc

    async def _place_holds(self, holds: list[NewHold]) -> list[uuid.UUID | Exception]:
        if len(holds) == 1:
            return [await self._place_one(holds[0])]
        return await in_chunks(holds, self._place_chunk)

    async def _place_chunk(self, holds: list[NewHold]) -> list[uuid.UUID | Exception]:
        placed = await refusable(lambda: place_holds(self.pool, holds), self.counts)
        if placed is None:
            return list(await asyncio.gather(*(self._place_one(hold) for hold in holds)))
        self.counts["holds"] += 1
        return placed

    # -- settlements -------------------------------------------------------------------------------------

    async def _settle_single(self, item: Settlement) -> int | None:
        return _charged(await settle_hold(self.pool, item))

    async def _settle_one(self, item: Settlement) -> int | Exception | None:
        try:
            return await self._settle_single(item)
        except Exception as exc:
            return exc

    async def _settle(self, items: list[Settlement]) -> list[int | Exception | None]:
        # The same hold twice in a batch: the first settles it, the others find it settled (as they would have
        # one after the other).
        first: dict[uuid.UUID | None, int] = {}
        for n, item in enumerate(items):
            first.setdefault(item.hold_id, n)
        distinct = [items[n] for n in first.values()]
        if len(distinct) == 1:
            settled = [await self._settle_one(distinct[0])]
        else:
            settled = await in_chunks(distinct, self._settle_chunk)
        by_position = dict(zip(first.values(), settled, strict=True))
        return [by_position.get(n) for n in range(len(items))]

    async def _settle_chunk(self, items: list[Settlement]) -> list[int | Exception | None]:
        resolved = await refusable(lambda: settle_holds(self.pool, items), self.counts)
        if resolved is None:
            return list(await asyncio.gather(*(self._settle_one(item) for item in items)))
        self.counts["settlements"] += 1
        return [_charged(resolution) for resolution in resolved]


request_billing = PerPool(RequestBilling)  # request_billing(db): the process's group commits of billing on db


async def place_request_hold(db: Database, principal: Principal, amount: int, description: str) -> uuid.UUID:
    """Set ``amount`` aside for one request. Raises ``InsufficientCredits`` / ``SpendCapExceeded``."""
    hold = NewHold(account_id=principal.account_id, amount=amount, description=description)
    if not needs_spend_reservation(principal):
        return await request_billing(db).holds.submit(hold)
    async with db.transaction() as conn:
        await place_hold(conn, hold)
        await reserve_key_spend(conn, principal, hold.id, amount)
    return hold.id


async def settle_request(db: Database, item: Settlement) -> int | None:
    """Settle one request (``request_settlement``): charge its ``charge`` (capped at the hold; 0 voids it) and
    record the usage, group-committed with other requests settling meanwhile. Returns the credits charged, or
    None when the request was settled before."""
    charged = await request_billing(db).settlements.submit(item)
    count_charge(item, charged)
    return charged


def request_settlement(
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
) -> Settlement:
    """The settlement of one request's hold: ``charge`` (0 voids it) and the usage record."""
    return Settlement(
        hold_id=hold_id, task_id=None, charge=charge,
        resolution="posted" if charge > 0 else "voided", description=f"{model} {source}",
        api_key_id=principal.api_key_id, usage_id=uuid7(), model=model, provider=provider, kind=kind, status=status,
        units=to_json(units), latency_ms=latency_ms, source=source, request_id=request_id,
    )  # fmt: skip


async def settle_request_in(conn: Connection, item: Settlement) -> int | None:
    """Settle a request's hold in the caller's transaction, with the change it belongs to (a batch line's
    result). The credits charged, or None when the hold was settled before."""
    return _charged(await settle_hold(conn, item))


def count_charge(item: Settlement, charged: int | None) -> None:
    """Metrics: credits charged for synchronous requests too."""
    if charged:
        METRICS.inc("conduit_credits_charged", {"model": item.model or "unknown"}, charged / 1_000_000)


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
        abandoned = Settlement(
            hold_id=row["id"], task_id=None, charge=0, resolution="voided",
            description=f"{model} request abandoned", api_key_id=row["api_key_id"], usage_id=uuid7(), model=model,
            kind="text", status="failed", source="chat.completion", request_id=row["id"],
        )  # fmt: skip
        if await settle_hold(db.pool, abandoned) is not None:
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
