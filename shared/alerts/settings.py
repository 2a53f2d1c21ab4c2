"""An account's alert settings: the low-balance threshold and the budget percentages that alert."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.infra.db import Database
from shared.infra.errors import InvalidInput
from shared.teams import audit
from shared.teams.audit import AccountActor

MAX_THRESHOLDS = 5


@dataclass(frozen=True, slots=True)
class AlertSettings:
    low_balance_threshold: int | None  # micro-credits; None: no low-balance alert
    budget_percents: list[int]  # of a key's period budget, ascending
    low_balance_alerted: bool  # the balance is below the threshold and the alert was sent


def check_percents(percents: list[int]) -> list[int]:
    if len(percents) > MAX_THRESHOLDS or any(
        isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 100 for p in percents
    ):
        raise InvalidInput(
            f"budget_thresholds lists at most {MAX_THRESHOLDS} percentages from 1 to 100", param="budget_thresholds"
        )
    return sorted(set(percents))


async def get_alert_settings(db: Database, account_id: uuid.UUID) -> AlertSettings:
    row = await db.fetchrow(
        "SELECT low_balance_threshold, budget_alert_percents, low_balance_alerted_at FROM accounts WHERE id = $1",
        account_id,
    )
    assert row is not None
    return AlertSettings(row["low_balance_threshold"], list(row["budget_alert_percents"] or []),
                         row["low_balance_alerted_at"] is not None)  # fmt: skip


async def set_alert_settings(
    db: Database, actor: AccountActor, *, low_balance_threshold: int | None, budget_percents: list[int]
) -> AlertSettings:
    """Change the thresholds (recorded in the audit trail). A new low-balance threshold re-arms its alert."""
    percents = check_percents(budget_percents)
    if low_balance_threshold is not None and low_balance_threshold < 0:
        raise InvalidInput("low_balance_threshold cannot be negative", param="low_balance_threshold")
    async with db.transaction() as conn:
        old = await conn.fetchrow(
            "SELECT low_balance_threshold, budget_alert_percents FROM accounts WHERE id = $1 FOR UPDATE",
            actor.account_id,
        )
        assert old is not None
        await conn.execute(
            """
            UPDATE accounts SET low_balance_threshold = $2, budget_alert_percents = $3,
                low_balance_alerted_at = CASE WHEN low_balance_threshold IS DISTINCT FROM $2 THEN NULL
                                              ELSE low_balance_alerted_at END,
                updated_at = now()
            WHERE id = $1
            """,
            actor.account_id,
            low_balance_threshold,
            percents,
        )
        before = {"low_balance_threshold": old["low_balance_threshold"],
                  "budget_thresholds": list(old["budget_alert_percents"] or [])}  # fmt: skip
        after = {"low_balance_threshold": low_balance_threshold, "budget_thresholds": percents}
        if before != after:
            await audit.record(conn, actor, "billing.alerts", "account", actor.account_id, before=before, after=after)
    return await get_alert_settings(db, actor.account_id)
