"""The money invariants, as queries an operator can run against a live database
(``conduit ledger check``) and the tests run after every scenario. Each returns offending rows."""

from __future__ import annotations

from typing import Any

from shared.infra.db import Database

CHECKS: dict[str, str] = {
    # 1. available >= 0 and held >= 0
    "negative_balance": """
        SELECT id AS account_id, credits_total, credits_held FROM accounts
        WHERE credits_held < 0 OR credits_total - credits_held < 0
    """,
    # The denormalised sums match the rows they sum.
    "lots_do_not_sum_to_total": """
        SELECT a.id AS account_id, a.credits_total, COALESCE(SUM(l.remaining), 0) AS lots_remaining
        FROM accounts a LEFT JOIN credit_lots l ON l.account_id = a.id
        GROUP BY a.id HAVING a.credits_total <> COALESCE(SUM(l.remaining), 0)
    """,
    "holds_do_not_sum_to_held": """
        SELECT a.id AS account_id, a.credits_held, COALESCE(SUM(h.amount), 0) AS pending_holds
        FROM accounts a LEFT JOIN holds h ON h.account_id = a.id AND h.status = 'pending'
        GROUP BY a.id HAVING a.credits_held <> COALESCE(SUM(h.amount), 0)
    """,
    # A lot is open (closed_at NULL) exactly while something remains in it: holds find the open lots by it.
    "lot_open_state_wrong": """
        SELECT id AS lot_id, remaining, closed_at FROM credit_lots WHERE (closed_at IS NULL) <> (remaining > 0)
    """,
    "lot_reserved_mismatch": """
        SELECT l.id AS lot_id, l.reserved, COALESCE(SUM(a.amount), 0) AS pending_allocations
        FROM credit_lots l
        LEFT JOIN hold_allocations a ON a.lot_id = l.id
            AND EXISTS (SELECT 1 FROM holds h WHERE h.id = a.hold_id AND h.status = 'pending')
        GROUP BY l.id HAVING l.reserved <> COALESCE(SUM(a.amount), 0)
    """,
    # 2. granted - charged - expired - revoked - refunded (+/- adjustments) = available + held,
    #    and the ledger's signed effects reproduce the account's sums.
    "ledger_does_not_balance": """
        SELECT a.id AS account_id, a.credits_total, a.credits_held,
               COALESCE(SUM(e.delta_total), 0) AS ledger_total, COALESCE(SUM(e.delta_held), 0) AS ledger_held,
               COALESCE(SUM(CASE WHEN e.kind = 'grant' THEN e.amount END), 0)
             - COALESCE(SUM(CASE WHEN e.kind IN ('charge', 'expire', 'revoke', 'refund') THEN e.amount END), 0)
             + COALESCE(SUM(CASE WHEN e.kind = 'adjust' THEN e.delta_total END), 0) AS by_kind
        FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
        GROUP BY a.id
        HAVING a.credits_total <> COALESCE(SUM(e.delta_total), 0)
            OR a.credits_held <> COALESCE(SUM(e.delta_held), 0)
            OR a.credits_total <> (
                COALESCE(SUM(CASE WHEN e.kind = 'grant' THEN e.amount END), 0)
              - COALESCE(SUM(CASE WHEN e.kind IN ('charge', 'expire', 'revoke', 'refund') THEN e.amount END), 0)
              + COALESCE(SUM(CASE WHEN e.kind = 'adjust' THEN e.delta_total END), 0))
    """,
    # 3. terminal task <-> resolved hold (posted iff succeeded); active task <-> pending hold.
    "task_hold_state_mismatch": """
        SELECT t.id AS task_id, t.status, h.status AS hold_status
        FROM tasks t LEFT JOIN holds h ON h.task_id = t.id
        WHERE h.id IS NULL
           OR (t.status IN ('queued', 'running') AND h.status <> 'pending')
           OR (t.status = 'succeeded' AND h.status <> 'posted')
           OR (t.status IN ('failed', 'canceled') AND h.status <> 'voided')
    """,
    # 4. charged <= held, and the task's figures match its hold.
    "task_hold_amount_mismatch": """
        SELECT t.id AS task_id, t.credits_held, t.credits_charged, h.amount, h.charged
        FROM tasks t JOIN holds h ON h.task_id = t.id
        WHERE t.credits_charged > t.credits_held OR h.charged > h.amount
           OR t.credits_held <> h.amount OR t.credits_charged <> h.charged
    """,
    "allocations_do_not_cover_hold": """
        SELECT h.id AS hold_id, h.amount, h.charged, COALESCE(SUM(a.amount), 0) AS allocated,
               COALESCE(SUM(a.charged), 0) AS allocated_charged
        FROM holds h LEFT JOIN hold_allocations a ON a.hold_id = h.id
        GROUP BY h.id
        HAVING h.amount <> COALESCE(SUM(a.amount), 0) OR h.charged <> COALESCE(SUM(a.charged), 0)
    """,
    # Spend caps and budgets: a key's reserved amounts are the sums of its reservations against each, every
    # reservation for a pending hold.
    "key_reservations_mismatch": """
        SELECT k.id AS api_key_id, k.cap_held, k.budget_held,
               COALESCE(SUM(r.amount) FILTER (WHERE r.capped), 0) AS cap_reservations,
               COALESCE(SUM(r.amount) FILTER (WHERE r.budgeted), 0) AS budget_reservations
        FROM api_keys k LEFT JOIN api_key_holds r ON r.api_key_id = k.id
        GROUP BY k.id
        HAVING k.cap_held <> COALESCE(SUM(r.amount) FILTER (WHERE r.capped), 0)
            OR k.budget_held <> COALESCE(SUM(r.amount) FILTER (WHERE r.budgeted), 0)
    """,
    "member_reservations_mismatch": """
        SELECT m.account_id, m.person_id, m.budget_held, COALESCE(SUM(r.amount), 0) AS reservations
        FROM account_members m
        LEFT JOIN member_holds r ON r.account_id = m.account_id AND r.person_id = m.person_id
        GROUP BY m.id HAVING m.budget_held <> COALESCE(SUM(r.amount), 0)
    """,
    "member_reservation_outlived_hold": """
        SELECT r.hold_id, r.person_id, h.status FROM member_holds r JOIN holds h ON h.id = r.hold_id
        WHERE h.status <> 'pending' OR r.amount <> h.amount
    """,
    "key_reservation_outlived_hold": """
        SELECT r.hold_id, r.api_key_id, h.status FROM api_key_holds r JOIN holds h ON h.id = r.hold_id
        WHERE h.status <> 'pending' OR r.amount <> h.amount
    """,
}


async def check_ledger(db: Database) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    async with db.connection() as conn:
        for name, query in CHECKS.items():
            for row in await conn.fetch(query):
                problems.append({"check": name, **dict(row)})
    return problems
