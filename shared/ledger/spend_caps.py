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

A member's budget per period (their sessions and the keys they created) is reserved and settled the same way,
after the key's (``member_holds``, ``account_members.budget_*``).

Callers without a cap or a budget reserve nothing, so their holds stay one SQL statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from shared.infra.db import Connection
from shared.infra.errors import BudgetExceeded, SpendCapExceeded
from shared.ledger.budgets import BudgetState, budget_state, now
from shared.ledger.money import Credits

if TYPE_CHECKING:
    from shared.accounts.keys import Principal


def _key_limited(principal: Principal) -> bool:
    return principal.api_key_id is not None and (principal.spend_cap is not None or principal.budget is not None)


def _member_limited(principal: Principal) -> bool:
    return principal.member_budget is not None and principal.budget_member_id is not None


def needs_spend_reservation(principal: Principal) -> bool:
    """Does a hold for this caller reserve its amount (on an API key with a spend cap or a budget, or on a
    member with a budget)?"""
    return _key_limited(principal) or _member_limited(principal)


async def reserve_key_spend(conn: Connection, principal: Principal, hold_id: uuid.UUID, amount: int) -> None:
    """Count ``amount`` against the key's cap and its period budget, then the member's period budget, or raise
    ``SpendCapExceeded`` / ``BudgetExceeded`` (the caller's transaction rolls back, hold included). Nothing to
    do for a caller without any of them."""
    at = now()
    if _key_limited(principal):
        await _reserve_on_key(conn, principal, hold_id, amount, at)
    if _member_limited(principal):
        await _reserve_on_member(conn, principal, hold_id, amount, at)


async def _reserve_on_key(
    conn: Connection, principal: Principal, hold_id: uuid.UUID, amount: int, at: dt.datetime
) -> None:
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
    raise _budget_refusal(f"this API key's {budget.describe()} budget", state, amount)


async def _reserve_on_member(
    conn: Connection, principal: Principal, hold_id: uuid.UUID, amount: int, at: dt.datetime
) -> None:
    budget = principal.member_budget
    assert budget is not None
    row = await conn.fetchrow(
        """
        WITH member AS (
            UPDATE account_members SET
                budget_spent = CASE WHEN budget_period_start IS NULL OR budget_period_start < $5 THEN 0
                                    ELSE budget_spent END,
                budget_period_start = GREATEST(budget_period_start, $5),
                budget_held = budget_held + $4
            WHERE account_id = $1 AND person_id = $2 AND budget IS NOT NULL
              AND budget_held + $4 + CASE WHEN budget_period_start IS NULL OR budget_period_start < $5 THEN 0
                                          ELSE budget_spent END <= budget
            RETURNING account_id, person_id
        ), reservation AS (
            INSERT INTO member_holds (id, hold_id, account_id, person_id, amount)
            SELECT gen_random_uuid(), $3, account_id, person_id, $4 FROM member
            RETURNING id
        )
        SELECT (SELECT count(*) FROM reservation) AS reserved, m.budget, m.budget_period, m.budget_period_start,
               m.budget_spent, m.budget_held
        FROM account_members m WHERE m.account_id = $1 AND m.person_id = $2
        """,
        principal.account_id,
        principal.budget_member_id,
        hold_id,
        amount,
        budget.bounds(at)[0],
    )
    if row is None or row["reserved"] == 1 or row["budget"] is None:
        return  # reserved; or the member left / their budget was removed meanwhile
    state = budget_state(budget, row["budget_period_start"], row["budget_spent"], row["budget_held"], at)
    raise _budget_refusal(f"the member budget ({budget.describe()})", state, amount)


def _budget_refusal(whose: str, state: BudgetState, amount: int) -> BudgetExceeded:
    """``402 budget_exceeded``, naming the budget, its period, what it leaves and when it resets."""
    budget = state.budget
    return BudgetExceeded(
        f"this request needs up to {Credits(amount)} credits and {whose} leaves {Credits(state.remaining)} of "
        f"{Credits(budget.amount)} this {budget.period}; it resets at "
        f"{state.resets_at.isoformat().replace('+00:00', 'Z')}"
    )


async def drop_member_reservations(conn: Connection, account_id: uuid.UUID, person_id: uuid.UUID | None = None) -> None:
    """A member leaves the account (``person_id``; None: every member of ``account_id`` who is not in it any more):
    their pending holds no longer count against a budget of theirs, so their reservations go (the holds stay)."""
    await conn.execute(
        """
        DELETE FROM member_holds r WHERE r.account_id = $1 AND ($2::uuid IS NULL OR r.person_id = $2)
          AND NOT EXISTS (SELECT 1 FROM account_members m WHERE m.account_id = r.account_id
                          AND m.person_id = r.person_id)
        """,
        account_id,
        person_id,
    )


# CTEs that settle on their keys the holds resolved earlier in the same statement (a CTE ``resolved`` with
# ``hold_id``, ``api_key_id`` (the key the charge goes through, or NULL) and ``charged``): each key's charges
# are added to its ``spent`` (and, for a hold reserved against the budget, to the period's ``budget_spent``), and
# the holds' reservations are deleted and taken off their keys' ``cap_held`` / ``budget_held``; then the same
# for the members whose budgets the holds were reserved against (``member_holds``): locked after the keys.
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
), released_member_hold AS (
    DELETE FROM member_holds h USING resolved WHERE h.hold_id = resolved.hold_id
    RETURNING h.hold_id, h.account_id, h.person_id, h.amount
), member_spend AS (
    UPDATE account_members m SET budget_spent = m.budget_spent + per_member.charged,
                                 budget_held = m.budget_held - per_member.released
    FROM (
        SELECT b.account_id, b.person_id, sum(r.charged) AS charged, sum(b.amount) AS released
        FROM released_member_hold b JOIN resolved r ON r.hold_id = b.hold_id
        GROUP BY b.account_id, b.person_id
    ) per_member
    WHERE m.account_id = per_member.account_id AND m.person_id = per_member.person_id
)"""
