"""Holds, the expiry sweep and refunds find an account's open lots through an index (``credit_lots_spendable``,
``credit_lots_expiring``), not by reading every lot of every account: their cost must not grow with the table.
The tables here are small, so the planner would scan them anyway; with sequential scans made prohibitively
expensive (``indexes_only``), a lookup that cannot use an index still scans, and that is what these tests catch."""

from __future__ import annotations

from shared.infra.db import Connection
from shared.ledger import NewHold, place_hold
from shared.ledger.lots import expire_lots, upcoming_expiries
from shared.services import Services
from tests.conftest import AccountFactory
from tests.integration.ledger.planner import indexes_only


async def seq_scans(conn: Connection) -> int:
    """Sequential scans of credit_lots in this transaction so far (pending statistics: a delta is what counts)."""
    count: int = await conn.fetchval("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'credit_lots'")
    return count


async def test_a_hold_the_expiry_sweep_and_the_expiry_list_use_the_open_lots_indexes(
    services: Services, make_account: AccountFactory
) -> None:
    account = await make_account(credits="5")
    async with indexes_only(services.settings) as conn:
        before = await seq_scans(conn)
        await place_hold(conn, NewHold(account.id, 100_000, description="lookup"))
        await expire_lots(conn)
        await upcoming_expiries(conn, account.id)
        scanned = await seq_scans(conn) - before
    assert scanned == 0
