"""ledger_resolve_hold(): post or void a hold in one round trip; conduit_uuid7(), the ids of the ledger entries
it makes itself.

The functions' code is ``shared/ledger/sql/ledger_resolve_hold.sql`` and ``conduit_uuid7.sql`` (see
``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-11-22T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_resolve_hold function"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[function_sql("conduit_uuid7"), function_sql("ledger_resolve_hold")],
        backwards=[
            "DROP FUNCTION IF EXISTS ledger_resolve_hold(uuid, uuid, bigint, text, text, uuid, uuid)",
            "DROP FUNCTION IF EXISTS conduit_uuid7()",
        ],
    )
