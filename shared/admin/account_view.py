"""What the console shows of one account: standing, balance and lots, members, keys, recent tasks, usage,
orders, tickets, limits, ledger and the staff actions on it. Read only.

Accounts have one member today, their owner; ``members`` is the list the page shows, so that accounts with
several people only add rows to it."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.accounts.erasure import find_account
from shared.admin.accounts import account_detail
from shared.billing.orders import list_orders
from shared.infra.db import Database
from shared.ledger.money import Credits
from shared.settings import Settings
from shared.staff import audit
from shared.support.queries import Viewer, list_tickets
from shared.tasks.queries import list_tasks


async def account_page(db: Database, ident: str, settings: Settings) -> dict[str, Any]:
    account_id = await find_account(db, ident)
    view = await account_detail(db, str(account_id))
    row = await db.fetchrow(
        """
        SELECT role, status, suspension_reason, email_verified_at, totp_enabled_at IS NOT NULL AS second_factor,
               rate_limit_rpm, max_inflight_tasks, created_at
        FROM accounts WHERE id = $1
        """,
        account_id,
    )
    assert row is not None  # find_account found it
    lots = await db.fetch(
        """
        SELECT id, source, reference, amount, remaining, reserved, expires_at, created_at FROM credit_lots
        WHERE account_id = $1 AND closed_at IS NULL ORDER BY expires_at NULLS LAST, id
        """,
        account_id,
    )
    ledger = await db.fetch(
        """
        SELECT id, kind, amount, delta_total, task_id, description, created_at FROM ledger_entries
        WHERE account_id = $1 ORDER BY id DESC LIMIT 20
        """,
        account_id,
    )
    usage = await db.fetch(
        """
        SELECT model, count(*) AS requests, count(*) FILTER (WHERE status = 'failed') AS failed,
               sum(credits) AS credits
        FROM usage_records WHERE account_id = $1 AND created_at > now() - interval '30 days'
        GROUP BY model ORDER BY sum(credits) DESC
        """,
        account_id,
    )
    tasks = (await list_tasks(db, account_id, limit=10)).items
    defaults = settings.rate_limits
    return {
        **msgspec.structs.asdict(view),
        "standing": dict(row),
        "members": [{"email": view.email, "role": "owner", "account_id": str(account_id)}],
        "lots": [
            {**dict(lot), "amount": Credits(lot["amount"]), "unused": Credits(lot["remaining"] - lot["reserved"])}
            for lot in lots
        ],
        "ledger": [{**dict(e), "amount": Credits(e["amount"]), "delta": Credits(e["delta_total"])} for e in ledger],
        "usage": [{**dict(u), "credits": Credits(u["credits"] or 0)} for u in usage],
        "recent_tasks": tasks,
        "orders": (await list_orders(db, account_id, limit=10)).items,
        "tickets": (await list_tickets(db, Viewer(account_id, staff=True), account=str(account_id), limit=10)).items,
        "limits": {
            "rate_limit_rpm": row["rate_limit_rpm"],
            "max_inflight_tasks": row["max_inflight_tasks"],
            "default_rpm": defaults.rpm_per_account,
            "default_max_inflight": defaults.inflight_per_account,
        },
        "audit": (await audit.entries(db, audit.AuditFilters("account", str(account_id)), limit=20)).items,
    }
