"""Settling holds: charge what the work cost (capped at the hold), release the rest, count the charge on the API
key and write the usage record, in one statement.

Every resolution of a hold is the same statement shape (``_settle_ctes``): a SQL function that makes a
compare-and-set of the hold's status (so a replay changes nothing) followed by the charge drawn from the hold's
lots earliest-expiry first (``sql/ledger_resolve_hold.sql`` for one hold, ``sql/ledger_resolve_holds.sql`` for
a batch, which updates each account's row and each lot once for all its holds); then the key's spend
(``spend_caps.KEY_SPEND_SQL``) and the usage record of each resolved hold (``shared.usage.insert_usage_sql``,
whose ``credits`` are what was charged). It is used three ways:

* ``settle_hold(conn, settlement)``: one hold (a synchronous request's; ``post_hold`` and ``void_hold`` are
  the same without a usage record);
* ``settle_holds(conn, settlements)``: many requests' holds in one statement (a group commit);
* ``task_settlement_sql``: the CTEs that the statement ending a task embeds after its compare-and-set on the
  task's status (``shared.tasks.lifecycle``), with ``task_settlement_params`` as their parameters.

Locks are taken holds -> accounts -> lots (the SQL functions; a batch takes each kind in id order, so
concurrent batches cannot deadlock) -> keys (``KEY_SPEND_SQL``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import asyncpg

from shared.infra.db import Connection, to_json
from shared.infra.ids import uuid7
from shared.ledger.spend_caps import KEY_SPEND_SQL
from shared.usage import insert_usage_sql


@dataclass(frozen=True, slots=True)
class HoldResolution:
    hold_id: uuid.UUID
    account_id: uuid.UUID
    amount: int
    charged: int
    expired_on_release: int  # released back to a lot that had expired meanwhile, so expired at once


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one pending hold ends. The hold is named by its id or by its task's. ``charge`` is capped at the
    hold; ``resolution`` is 'posted' (charged, the rest released) or 'voided' (nothing charged). With a
    ``usage_id``, the usage record of the request is written too (its ``credits`` are the charge)."""

    hold_id: uuid.UUID | None
    task_id: uuid.UUID | None
    charge: int
    resolution: str
    description: str
    api_key_id: uuid.UUID | None = None  # the key whose spend the charge counts in
    usage_id: uuid.UUID | None = None
    model: str | None = None
    provider: str | None = None
    kind: str | None = None
    status: str | None = None  # the usage record's: succeeded, failed, canceled
    units: str = "{}"  # JSON
    latency_ms: int | None = None
    source: str | None = None
    request_id: uuid.UUID | None = None
    charge_entry_id: uuid.UUID = field(default_factory=uuid7)  # the ledger entries' ids (time-ordered)
    release_entry_id: uuid.UUID = field(default_factory=uuid7)

    def __post_init__(self) -> None:
        # A negative charge or an unknown resolution is refused by ledger_resolve_hold (check_violation).
        if (self.task_id is None) == (self.hold_id is None):
            raise ValueError("name the hold by exactly one of task_id and hold_id")

    def params(self) -> tuple[Any, ...]:
        """The parameters of ``settle_hold``'s statement: the attributes, in order."""
        return tuple(getattr(self, attribute) for attribute in _ATTRIBUTES)


# The SQL type of each Settlement attribute: the parameters of the statements below, in attribute order.
_SQL_TYPES = {
    "hold_id": "uuid", "task_id": "uuid", "charge": "bigint", "resolution": "text",
    "description": "text", "api_key_id": "uuid", "usage_id": "uuid", "model": "text", "provider": "text",
    "kind": "text", "status": "text", "units": "text", "latency_ms": "integer", "source": "text",
    "request_id": "uuid", "charge_entry_id": "uuid", "release_entry_id": "uuid",
}  # fmt: skip
_ATTRIBUTES = tuple(f.name for f in fields(Settlement))
assert tuple(_SQL_TYPES) == _ATTRIBUTES, "every Settlement attribute has its SQL type, in order"


# What ``resolved`` carries of each item for the usage record (``i``: the item).
_USAGE_COLUMNS = (
    "i.api_key_id, i.usage_id, i.model, i.provider, i.kind, i.status, i.units, i.latency_ms, i.source, i.request_id"
)

# The usage record of each hold resolved in the statement that has a ``usage_id``: its credits are the charge.
_INSERT_USAGE = insert_usage_sql(
    "SELECT usage_id, account_id, api_key_id, task_id, model, provider, kind, status, units::jsonb, charged,"
    " latency_ms, source, request_id FROM resolved WHERE usage_id IS NOT NULL"
)


def _settle_ctes(items: str, *, many: bool = False) -> str:
    """The CTEs that settle the holds ``items`` lists (a SELECT with a column per Settlement attribute, one row
    per hold): ``resolved`` (a row per hold resolved now: ``ledger_resolve_hold``'s columns and the usage
    record's), the keys' spend, and ``usage``, the INSERT of the usage records. That INSERT reads every row of
    ``resolved``, and a data-modifying CTE always runs to completion, so each hold is resolved whatever the
    rest of the statement reads. One hold goes through ``ledger_resolve_hold``; ``many`` holds through
    ``ledger_resolve_holds``, which updates each account's row and each lot once for the whole batch."""
    if many:
        resolve = f"""numbered AS MATERIALIZED (
    SELECT row_number() OVER () AS n, * FROM ({items}) AS listed
), resolved AS MATERIALIZED (
    SELECT r.hold_id, r.account_id, r.task_id, r.amount, r.charged, r.expired, {_USAGE_COLUMNS}
    FROM (SELECT array_agg(hold_id ORDER BY n) AS hold_ids, array_agg(task_id ORDER BY n) AS task_ids,
                 array_agg(charge ORDER BY n) AS charges, array_agg(resolution ORDER BY n) AS resolutions,
                 array_agg(description ORDER BY n) AS descriptions,
                 array_agg(charge_entry_id ORDER BY n) AS charge_entry_ids,
                 array_agg(release_entry_id ORDER BY n) AS release_entry_ids
          FROM numbered) AS a
    CROSS JOIN LATERAL ledger_resolve_holds(a.hold_ids, a.task_ids, a.charges, a.resolutions, a.descriptions,
                                            a.charge_entry_ids, a.release_entry_ids) r
    JOIN numbered i ON i.n = r.item
)"""
    else:
        resolve = f"""items AS ({items}
), resolved AS MATERIALIZED (
    SELECT r.hold_id, r.account_id, r.task_id, r.amount, r.charged, r.expired, {_USAGE_COLUMNS}
    FROM items i
    CROSS JOIN LATERAL ledger_resolve_hold(i.hold_id, i.task_id, i.charge, i.resolution, i.description,
                                           i.charge_entry_id, i.release_entry_id) r
)"""
    return f"""{resolve}, {KEY_SPEND_SQL}, usage AS (
{_INSERT_USAGE}
)"""


_RESOLVED = "SELECT hold_id, account_id, amount, charged, expired FROM resolved"

# One hold: a parameter per attribute.
_ONE_ITEM = "SELECT " + ", ".join(f"${n}::{_SQL_TYPES[name]} AS {name}" for n, name in enumerate(_ATTRIBUTES, 1))
_SETTLE = f"WITH {_settle_ctes(_ONE_ITEM)}\n{_RESOLVED}"

# Many holds (distinct ones, named by id): an array per attribute.
_ITEMS = (
    "SELECT * FROM unnest(" + ", ".join(f"${n}::{_SQL_TYPES[name]}[]" for n, name in enumerate(_ATTRIBUTES, 1))
    + f") AS i({', '.join(_ATTRIBUTES)})"
)  # fmt: skip
_SETTLE_MANY = f"WITH {_settle_ctes(_ITEMS, many=True)}\n{_RESOLVED}"


def _resolution(row: asyncpg.Record) -> HoldResolution:
    return HoldResolution(row["hold_id"], row["account_id"], row["amount"], row["charged"], row["expired"])


async def settle_hold(conn: Connection | asyncpg.Pool, settlement: Settlement) -> HoldResolution | None:
    """Settle one hold (one round trip). None if it was resolved before: a replay changes nothing."""
    row = await conn.fetchrow(_SETTLE, *settlement.params())
    return _resolution(row) if row is not None else None


async def settle_holds(
    conn: Connection | asyncpg.Pool, settlements: Sequence[Settlement]
) -> list[HoldResolution | None]:
    """Settle distinct holds, named by id, in one statement. The resolution of each, in order (None for a hold
    resolved before)."""
    hold_ids = [settlement.hold_id for settlement in settlements]
    if None in hold_ids or len(set(hold_ids)) != len(hold_ids):
        raise ValueError("settle_holds takes distinct holds named by their ids")
    columns = [[getattr(settlement, attribute) for settlement in settlements] for attribute in _ATTRIBUTES]
    resolved = {row["hold_id"]: _resolution(row) for row in await conn.fetch(_SETTLE_MANY, *columns)}
    return [resolved.get(hold_id) for hold_id in hold_ids]


async def post_hold(
    conn: Connection,
    *,
    charge: int,
    task_id: uuid.UUID | None = None,
    hold_id: uuid.UUID | None = None,
    description: str = "",
) -> HoldResolution | None:
    """Charge ``charge`` (capped at the hold) and release the rest, with no usage record. The hold is named by
    its id or its task's. None if it was already resolved."""
    if charge < 0:
        raise ValueError("a charge cannot be negative")
    return await settle_hold(conn, Settlement(hold_id, task_id, charge, "posted", description))


async def void_hold(
    conn: Connection, *, task_id: uuid.UUID | None = None, hold_id: uuid.UUID | None = None, description: str = ""
) -> HoldResolution | None:
    """Release the whole hold, with no usage record. None if it was already resolved."""
    return await settle_hold(conn, Settlement(hold_id, task_id, 0, "voided", description))


def task_settlement_sql(first_param: int) -> str:
    """The CTEs that settle the hold of the task that a CTE ``t`` has just ended, for the statement of a task's terminal
    transition (``$1`` is the task's id; ``t`` returns its ``api_key_id``, ``model``, ``kind``, ``provider``,
    ``credits_charged`` and ``latency_ms``, and no row when the transition lost its race). A succeeded task's hold is
    posted with the task's ``credits_charged``; any other is voided. The parameters from ``$first_param`` on are
    ``task_settlement_params``'s."""
    resolution, suffix, usage_id, status, units, charge_entry, release_entry = (f"${first_param + n}" for n in range(7))
    return _settle_ctes(f"""
    SELECT NULL::uuid AS hold_id, $1::uuid AS task_id,
           CASE WHEN {resolution}::text = 'posted' THEN t.credits_charged ELSE 0 END AS charge,
           {resolution}::text AS resolution, t.model || {suffix}::text AS description, t.api_key_id,
           {usage_id}::uuid AS usage_id, t.model, t.provider, t.kind, {status}::text AS status,
           {units}::text AS units, t.latency_ms, 'task' AS source, NULL::uuid AS request_id,
           {charge_entry}::uuid AS charge_entry_id, {release_entry}::uuid AS release_entry_id
    FROM t""")


def succeeded_tasks_settlement_sql() -> str:
    """``task_settlement_sql`` for many succeeded tasks at once (the worker's group commit of completions): the CTEs
    that settle the hold of each task that a CTE ``t`` has just ended, posted with its ``credits_charged``
    (``ledger_resolve_holds``). ``t`` returns, per task, its ``id``, ``api_key_id``, ``model``, ``kind``,
    ``provider``, ``credits_charged`` and ``latency_ms``, and its settlement's ``usage_id``, ``units`` (JSON
    text), ``charge_entry_id`` and ``release_entry_id`` (``succeeded_task_settlement_ids``)."""
    return _settle_ctes(
        """
    SELECT NULL::uuid AS hold_id, t.id AS task_id, t.credits_charged AS charge,
           'posted'::text AS resolution, t.model || ' task' AS description, t.api_key_id, t.usage_id, t.model,
           t.provider, t.kind, 'succeeded'::text AS status, t.units, t.latency_ms, 'task' AS source,
           NULL::uuid AS request_id, t.charge_entry_id, t.release_entry_id
    FROM t""",
        many=True,
    )


def succeeded_task_settlement_ids() -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A succeeded task's settlement ids for ``succeeded_tasks_settlement_sql``: its usage record's, and its
    charge and release ledger entries'."""
    return uuid7(), uuid7(), uuid7()


def task_settlement_params(status: str, units: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """The parameters of ``task_settlement_sql`` for a task ending ``status`` (succeeded, failed, canceled) with
    the usage ``units``."""
    if status == "succeeded":
        resolution, suffix = "posted", " task"
    else:
        resolution, suffix = "voided", f" task {status}"
    return resolution, suffix, uuid7(), status, to_json(units or {}), uuid7(), uuid7()
