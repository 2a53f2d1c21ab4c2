"""Per-key limits set by the owner: which models a key may call, and how much it may spend in total.

Both are enforced wherever credits are held for a key (``POST /v1/tasks`` today; any other paid route calls
the same three functions):

* ``check_model_allowed(principal, model_id)`` before anything else;
* ``reserve_key_spend(conn, principal, hold_id, amount)`` in the transaction that places the hold, after it
  (lock order: account -> lots -> key). A conditional UPDATE of the key row, re-checked by PostgreSQL after
  any concurrent reservation, so concurrent submits can never take a key past its cap;
* ``key_spend_sql(key_id)`` in the statement that resolves the hold: the charge is added to ``spent`` (for
  every key, capped or not) and the reservation, if any, is released.

Keys without a cap reserve nothing, so the uncapped submit stays one SQL statement.
"""

from __future__ import annotations

import uuid

from shared.accounts.keys import Principal
from shared.infra.db import Connection
from shared.infra.errors import PermissionDenied, SpendCapExceeded
from shared.ledger.money import Credits


def check_model_allowed(principal: Principal, model_id: str) -> None:
    if principal.allowed_models is not None and model_id not in principal.allowed_models:
        raise PermissionDenied(
            f"this API key may not use model {model_id!r}; it is limited to: "
            + (", ".join(sorted(principal.allowed_models)) or "no models"),
            code="model_not_allowed",
            param="model",
        )


def needs_spend_reservation(principal: Principal) -> bool:
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


def key_spend_sql(key_id: str) -> str:
    """CTEs that settle a hold resolved in the same statement (a CTE named ``resolved`` with ``hold_id`` and
    ``charged``) on the API key ``key_id`` (an SQL expression): the charge is added to the key's ``spent`` and
    the key's spend-cap reservation for the hold is released. Nothing happens when nothing was resolved."""
    return f"""released_key_hold AS (
    DELETE FROM api_key_holds WHERE hold_id IN (SELECT hold_id FROM resolved) RETURNING amount
), key_spend AS (
    UPDATE api_keys SET spent = spent + resolved.charged,
                        cap_held = cap_held - COALESCE((SELECT sum(amount) FROM released_key_hold), 0)
    FROM resolved WHERE api_keys.id = {key_id}
)"""
