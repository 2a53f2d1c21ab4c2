"""ledger_place_hold(): set credits aside for a hold in one round trip.

The function's code is ``shared/ledger/sql/ledger_place_hold.sql`` (see ``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-11-21T22:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_place_hold function"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[function_sql("ledger_place_hold")],
        backwards=["DROP FUNCTION IF EXISTS ledger_place_hold(uuid, uuid, bigint, uuid, uuid, text)"],
    )
