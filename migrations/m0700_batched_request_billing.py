"""ledger_place_holds(): the holds of many synchronous requests in one round trip (a group commit).

The function's code is ``shared/ledger/sql/ledger_place_holds.sql`` (see ``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-11-22T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_place_holds function"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[function_sql("ledger_place_holds")],
        backwards=[
            "DROP FUNCTION IF EXISTS ledger_place_holds(uuid[], uuid[], bigint[], uuid[], text[])",
            "DROP FUNCTION IF EXISTS ledger_place_holds(uuid[], uuid[], bigint[], uuid[], uuid[], text[])",
        ],
    )
