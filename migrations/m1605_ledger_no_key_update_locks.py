"""Ledger functions lock the account row and the lots FOR NO KEY UPDATE instead of FOR UPDATE.

Only non-key columns of those rows change, and the weaker lock does not block the FOR KEY SHARE locks that
inserts referencing the account or a lot take. The functions' code is ``shared/ledger/sql/`` (see
``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-04T16:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger functions: FOR NO KEY UPDATE locks"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[
            function_sql(name) for name in ("ledger_place_hold", "ledger_resolve_hold", "ledger_place_task_holds")
        ],
        backwards=[],
    )
