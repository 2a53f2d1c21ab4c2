"""ledger_resolve_holds(): a batch of settlements updates each account's row and each lot once.

The group commits of request settlements and of task completions resolved their holds with one
``ledger_resolve_hold`` call per hold: an account's row (and a lot shared by its holds) was updated once per hold
in the same statement, under a lock held across all of them. The new function resolves the whole batch with a
statement per step. The function's code is ``shared/ledger/sql/ledger_resolve_holds.sql`` (see
``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-05T00:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_resolve_holds: one update per account and lot per batch of settlements"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[function_sql("ledger_resolve_holds")],
        backwards=[
            "DROP FUNCTION IF EXISTS ledger_resolve_holds(uuid[], uuid[], bigint[], text[], text[], uuid[], uuid[])"
        ],
    )
