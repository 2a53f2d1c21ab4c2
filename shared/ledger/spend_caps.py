"""A key's spend cap: the credits that go through an API key, counted on the key.

An owner may cap what one key spends in total (``api_keys.spend_cap``). Every key counts what it was charged
(``spent``); a capped key also counts what its pending holds may still cost (``cap_held``, one
``api_key_holds`` row per hold). Both move only here:

* ``reserve_key_spend(conn, principal, hold_id, amount)`` in the transaction that places the hold, after it
  (lock order: hold -> account -> lots -> key): a conditional UPDATE of the key row, re-checked by PostgreSQL
  after any concurrent reservation, so concurrent holds can never take a key past its cap;
* ``KEY_SPEND_SQL`` in the statement that resolves the hold (``shared.ledger.settlement``): the charge is
  added to the key's ``spent`` (every key, capped or not) and the hold's reservation, if any, is released.

Keys without a cap reserve nothing, so their holds stay one SQL statement.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from shared.infra.db import Connection
from shared.infra.errors import SpendCapExceeded
from shared.ledger.money import Credits

if TYPE_CHECKING:
    from shared.accounts.keys import Principal


def needs_spend_reservation(principal: Principal) -> bool:
    """Does a hold for this caller reserve its amount on the key (an API key with a spend cap)?"""
    return principal.api_key_id is not None and principal.spend_cap is not None


async def reserve_key_spend(conn: Connection, principal: Principal, hold_id: uuid.UUID, amount: int) -> None:
    """Count ``amount`` against the key's cap, or raise ``SpendCapExceeded`` (the caller's transaction rolls
    back, hold included). Nothing to do for a key without a cap."""
    if not needs_spend_reservation(principal):
        return
    row = await conn.fetchrow(
        """
        WITH key AS (
            UPDATE api_keys SET cap_held = cap_held + $3
            WHERE id = $1 AND spend_cap IS NOT NULL AND spent + cap_held + $3 <= spend_cap
            RETURNING id
        ), reservation AS (
            INSERT INTO api_key_holds (id, hold_id, api_key_id, amount)
            SELECT gen_random_uuid(), $2, id, $3 FROM key
            RETURNING id
        )
        SELECT (SELECT count(*) FROM reservation) AS reserved,
               k.spend_cap, k.spent, k.cap_held
        FROM api_keys k WHERE k.id = $1
        """,
        principal.api_key_id,
        hold_id,
        amount,
    )
    if row is None or row["reserved"] == 1 or row["spend_cap"] is None:
        return  # reserved; or the key was deleted / uncapped meanwhile (its own checks apply)
    left = max(0, row["spend_cap"] - row["spent"] - row["cap_held"])
    raise SpendCapExceeded(
        f"this request needs up to {Credits(amount)} credits and this API key's spend cap leaves "
        f"{Credits(left)} of {Credits(row['spend_cap'])}"
    )


# CTEs that settle on their keys the holds resolved earlier in the same statement (a CTE ``resolved`` with
# ``hold_id``, ``api_key_id`` (the key the charge goes through, or NULL) and ``charged``): each key's charges
# are added to its ``spent``, and the holds' reservations are deleted and taken off their keys' ``cap_held``.
# One UPDATE per key, after every hold of the statement is resolved (so the key is locked last).
KEY_SPEND_SQL = """released_key_hold AS (
    DELETE FROM api_key_holds h USING resolved WHERE h.hold_id = resolved.hold_id
    RETURNING h.api_key_id, h.amount
), key_spend AS (
    UPDATE api_keys k SET spent = k.spent + per_key.charged, cap_held = k.cap_held - per_key.released
    FROM (
        SELECT api_key_id, sum(charged) AS charged, sum(released) AS released
        FROM (SELECT api_key_id, charged, 0 AS released FROM resolved
              UNION ALL SELECT api_key_id, 0, amount FROM released_key_hold) moves
        GROUP BY api_key_id
    ) per_key
    WHERE k.id = per_key.api_key_id
)"""
