"""A key's spend cap: the credits that go through an API key, counted on the key.

An owner may cap what one key spends in total (``api_keys.spend_cap``). Every key counts what it was charged
(``spent``); a capped key also counts what its pending holds may still cost (``cap_held``, one
``api_key_holds`` row per hold). Both move only here:

* ``reserve_key_spend(conn, principal, hold_id, amount)`` in the transaction that places the hold, after it
  (lock order: hold -> account -> lots -> key): a conditional UPDATE of the key row, re-checked by PostgreSQL
  after any concurrent reservation, so concurrent holds can never take a key past its cap;
* ``KEY_SPEND_SQL`` in the statement that resolves the hold (``shared.ledger.settlement``): the charge is
  added to the key's ``spent`` (every key, capped or not) and the hold's reservation, if any, is released.

A key's budget per period (``shared.ledger.budgets``) is reserved and settled in the same statements: a hold
counts against both (``api_key_holds.capped`` / ``budgeted`` say which it was reserved against), and is refused
with ``SpendCapExceeded`` or ``BudgetExceeded`` (naming the period and when it resets) if either is short.

Keys without a cap or a budget reserve nothing, so their holds stay one SQL statement.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from shared.infra.db import Connection
from shared.infra.errors import BudgetExceeded, SpendCapExceeded
from shared.ledger.budgets import budget_state, now
from shared.ledger.money import Credits

if TYPE_CHECKING:
    from shared.accounts.keys import Principal


def needs_spend_reservation(principal: Principal) -> bool:
    """Does a hold for this caller reserve its amount on the key (an API key with a spend cap or a budget)?"""
    return principal.api_key_id is not None and (principal.spend_cap is not None or principal.budget is not None)


async def reserve_key_spend(conn: Connection, principal: Principal, hold_id: uuid.UUID, amount: int) -> None:
    """Count ``amount`` against the key's cap and its period budget, or raise ``SpendCapExceeded`` /
    ``BudgetExceeded`` (the caller's transaction rolls back, hold included). Nothing to do for a key without
    either."""
    if not needs_spend_reservation(principal):
        return
    at = now()
    period_start = principal.budget.bounds(at)[0] if principal.budget is not None else at
    row = await conn.fetchrow(
        """
        WITH key AS (
            UPDATE api_keys SET
                cap_held = cap_held + CASE WHEN spend_cap IS NOT NULL THEN $3 ELSE 0 END,
                budget_spent = CASE WHEN budget_period_start IS NULL OR budget_period_start < $4 THEN 0
                                    ELSE budget_spent END,
                budget_period_start = GREATEST(budget_period_start, $4),
                budget_held = budget_held + CASE WHEN budget IS NOT NULL THEN $3 ELSE 0 END
            WHERE id = $1 AND (spend_cap IS NOT NULL OR budget IS NOT NULL)
              AND (spend_cap IS NULL OR spent + cap_held + $3 <= spend_cap)
              AND (budget IS NULL OR budget_held + $3 + CASE WHEN budget_period_start IS NULL
                   OR budget_period_start < $4 THEN 0 ELSE budget_spent END <= budget)
            RETURNING id, spend_cap IS NOT NULL AS capped, budget IS NOT NULL AS budgeted
        ), reservation AS (
            INSERT INTO api_key_holds (id, hold_id, api_key_id, amount, capped, budgeted)
            SELECT gen_random_uuid(), $2, id, $3, capped, budgeted FROM key
            RETURNING id
        )
        SELECT (SELECT count(*) FROM reservation) AS reserved, k.spend_cap, k.spent, k.cap_held, k.budget,
               k.budget_period, k.budget_period_start, k.budget_spent, k.budget_held
        FROM api_keys k WHERE k.id = $1
        """,
        principal.api_key_id,
        hold_id,
        amount,
        period_start,
    )
    if row is None or row["reserved"] == 1 or (row["spend_cap"] is None and row["budget"] is None):
        return  # reserved; or the key was deleted / its limits removed meanwhile (its own checks apply)
    if row["spend_cap"] is not None and row["spent"] + row["cap_held"] + amount > row["spend_cap"]:
        left = max(0, row["spend_cap"] - row["spent"] - row["cap_held"])
        raise SpendCapExceeded(
            f"this request needs up to {Credits(amount)} credits and this API key's spend cap leaves "
            f"{Credits(left)} of {Credits(row['spend_cap'])}"
        )
    budget = principal.budget
    if budget is None or budget.amount != row["budget"] or budget.period != row["budget_period"]:
        raise BudgetExceeded(f"this request needs up to {Credits(amount)} credits, more than this API key's budget "
                             "leaves in its current period")  # fmt: skip
    state = budget_state(budget, row["budget_period_start"], row["budget_spent"], row["budget_held"], at)
    raise BudgetExceeded(
        f"this request needs up to {Credits(amount)} credits and this API key's {budget.describe()} budget "
        f"leaves {Credits(state.remaining)} of {Credits(budget.amount)} this {budget.period}; it resets at "
        f"{state.resets_at.isoformat().replace('+00:00', 'Z')}"
    )


# CTEs that settle on their keys the holds resolved earlier in the same statement (a CTE ``resolved`` with
# ``hold_id``, ``api_key_id`` (the key the charge goes through, or NULL) and ``charged``): each key's charges
# are added to its ``spent`` (and, for a hold reserved against the budget, to the period's ``budget_spent``), and
# the holds' reservations are deleted and taken off their keys' ``cap_held`` / ``budget_held``.
# One UPDATE per key, after every hold of the statement is resolved (so the key is locked last).
KEY_SPEND_SQL = """released_key_hold AS (
    DELETE FROM api_key_holds h USING resolved WHERE h.hold_id = resolved.hold_id
    RETURNING h.hold_id, h.api_key_id, h.amount, h.capped, h.budgeted
), key_spend AS (
    UPDATE api_keys k SET spent = k.spent + per_key.charged, cap_held = k.cap_held - per_key.cap_released,
        budget_spent = k.budget_spent + per_key.budget_charged, budget_held = k.budget_held - per_key.budget_released
    FROM (
        SELECT api_key_id, sum(charged) AS charged, sum(cap_released) AS cap_released,
               sum(budget_charged) AS budget_charged, sum(budget_released) AS budget_released
        FROM (SELECT r.api_key_id, r.charged, 0 AS cap_released,
                     CASE WHEN b.budgeted THEN r.charged ELSE 0 END AS budget_charged, 0 AS budget_released
              FROM resolved r LEFT JOIN released_key_hold b ON b.hold_id = r.hold_id
              UNION ALL SELECT api_key_id, 0, CASE WHEN capped THEN amount ELSE 0 END, 0,
                               CASE WHEN budgeted THEN amount ELSE 0 END FROM released_key_hold) moves
        GROUP BY api_key_id
    ) per_key
    WHERE k.id = per_key.api_key_id
)"""
