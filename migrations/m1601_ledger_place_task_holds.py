"""ledger_place_task_holds(): the holds of many tasks of one account (a batch submit) in one statement.

The function's code is ``shared/ledger/sql/ledger_place_task_holds.sql`` (see ``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-04T16:01:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_place_task_holds function"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[function_sql("ledger_place_task_holds")],
        backwards=["DROP FUNCTION IF EXISTS ledger_place_task_holds(uuid, uuid[], bigint[], uuid[], uuid[], text[])"],
    )
