"""Finding alert crossings and sending their mail and webhook event (run by the worker's periodic sweep).

* Low balance: an account whose available credits are below its threshold and not yet alerted is marked alerted
  (one conditional UPDATE, so the alert goes out once) and alerted; one back at or above it (or without a
  threshold) is re-armed.
* Key budgets: for each key with a budget, the highest configured percentage its spend in the current period
  has reached; if it is above what was already alerted for this period, the key is marked (conditionally) and
  alerted. A new period starts from nothing again.

The webhook event is recorded in the same transaction as the mark; the mails are sent after the commit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.infra.db import Connection, Database
from shared.infra.mail import Mail, Mailer
from shared.ledger.budgets import PeriodBudget, budget_state, now
from shared.ledger.money import Credits
from shared.webhooks import ACCOUNT_BALANCE_LOW, KEY_BUDGET_THRESHOLD
from shared.webhooks.outbox import record_account_event

ALERTED_ROLES = ("owner", "admin", "billing")


@dataclass(frozen=True, slots=True)
class Sent:
    balance_low: int = 0
    budget_thresholds: int = 0
    rearmed: int = 0


async def recipients(conn: Connection, account_id: uuid.UUID) -> list[str]:
    """The addresses of the account's owners, admins and billing members."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT p.email FROM account_members m JOIN accounts p ON p.id = m.person_id
        WHERE m.account_id = $1 AND m.role = ANY($2::text[]) AND p.email IS NOT NULL AND p.status = 'active'
        ORDER BY p.email
        """,
        account_id,
        list(ALERTED_ROLES),
    )
    return [r["email"] for r in rows]


async def sweep_alerts(db: Database, mailer: Mailer, *, limit: int = 500) -> Sent:
    rearmed = await db.fetchval(
        """
        WITH rearmed AS (
            UPDATE accounts SET low_balance_alerted_at = NULL
            WHERE low_balance_alerted_at IS NOT NULL
              AND (low_balance_threshold IS NULL OR credits_total - credits_held >= low_balance_threshold)
            RETURNING 1
        ) SELECT count(*) FROM rearmed
        """
    )
    mails: list[Mail] = []
    balance = await _balance_alerts(db, mails, limit)
    budgets = await _budget_alerts(db, mails, limit)
    for mail in mails:
        mailer.dispatch(mail)
    return Sent(balance_low=balance, budget_thresholds=budgets, rearmed=rearmed)


async def _balance_alerts(db: Database, mails: list[Mail], limit: int) -> int:
    async with db.transaction() as conn:
        rows = await conn.fetch(
            """
            UPDATE accounts SET low_balance_alerted_at = now()
            WHERE id IN (
                SELECT id FROM accounts
                WHERE low_balance_threshold IS NOT NULL AND low_balance_alerted_at IS NULL AND status = 'active'
                  AND credits_total - credits_held < low_balance_threshold
                LIMIT $1 FOR UPDATE SKIP LOCKED
            ) AND low_balance_alerted_at IS NULL
            RETURNING id, email, credits_total - credits_held AS available, low_balance_threshold
            """,
            limit,
        )
        for row in rows:
            data = {"object": "balance_alert", "account_id": str(row["id"]), "available": Credits(row["available"]),
                    "threshold": Credits(row["low_balance_threshold"])}  # fmt: skip
            await record_account_event(conn, row["id"], ACCOUNT_BALANCE_LOW, data)
            text = (f"The Conduit account {row['email'] or row['id']} has {Credits(row['available'])} credits "
                    f"available, below the alert threshold of {Credits(row['low_balance_threshold'])} credits.\n\n"
                    "Buy credits from the dashboard's billing page so that keys and tasks keep working. This alert "
                    "is sent again only after the balance has been back above the threshold.\n")  # fmt: skip
            for address in await recipients(conn, row["id"]):
                mails.append(Mail(to=address, subject="Your Conduit balance is low", text=text))
    return len(rows)


async def _budget_alerts(db: Database, mails: list[Mail], limit: int) -> int:
    at = now()
    keys = await db.fetch(
        """
        SELECT k.id, k.account_id, k.name, k.prefix, k.budget, k.budget_period, k.budget_rolling, k.budget_anchor,
               k.budget_period_start, k.budget_spent, k.budget_held, k.budget_alerted_percent,
               k.budget_alerted_period, a.budget_alert_percents
        FROM api_keys k JOIN accounts a ON a.id = k.account_id
        WHERE k.budget IS NOT NULL AND k.budget > 0 AND k.budget_spent > 0 AND k.revoked_at IS NULL
          AND cardinality(a.budget_alert_percents) > 0
        ORDER BY k.id LIMIT $1
        """,
        limit,
    )
    sent = 0
    for key in keys:
        budget = PeriodBudget(key["budget"], key["budget_period"], key["budget_rolling"], key["budget_anchor"])
        state = budget_state(budget, key["budget_period_start"], key["budget_spent"], key["budget_held"], at)
        start = budget.bounds(at)[0]
        reached = [p for p in key["budget_alert_percents"] if state.spent * 100 >= p * budget.amount]
        already = key["budget_alerted_percent"] if key["budget_alerted_period"] == start else 0
        if not reached or max(reached) <= already:
            continue
        percent = max(reached)
        async with db.transaction() as conn:
            marked = await conn.fetchval(
                """
                UPDATE api_keys SET budget_alerted_percent = $2, budget_alerted_period = $3
                WHERE id = $1 AND (budget_alerted_period IS DISTINCT FROM $3 OR budget_alerted_percent < $2)
                RETURNING id
                """,
                key["id"],
                percent,
                start,
            )
            if marked is None:
                continue  # another sweep alerted it
            data = {"object": "budget_alert", "account_id": str(key["account_id"]), "api_key_id": str(key["id"]),
                    "key_name": key["name"], "threshold_percent": percent, "period": budget.period,
                    "reset": "rolling" if budget.rolling else "calendar", "budget": Credits(budget.amount),
                    "spent": Credits(state.spent), "resets_at": state.resets_at.isoformat()}  # fmt: skip
            await record_account_event(conn, key["account_id"], KEY_BUDGET_THRESHOLD, data)
            name = f"{key['name']} ({key['prefix']}…)" if key["name"] else f"{key['prefix']}…"
            text = (f"The API key {name} has spent {Credits(state.spent)} of its {budget.describe()} budget of "
                    f"{Credits(budget.amount)} credits ({percent}% alert). Its period resets at "
                    f"{state.resets_at.isoformat().replace('+00:00', 'Z')}; requests beyond the budget are "
                    "refused with 402 budget_exceeded until then.\n")  # fmt: skip
            for address in await recipients(conn, key["account_id"]):
                mails.append(Mail(to=address, subject=f"A Conduit API key reached {percent}% of its budget",
                                  text=text))  # fmt: skip
            sent += 1
    return sent
