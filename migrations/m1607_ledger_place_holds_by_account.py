"""ledger_place_holds() takes task holds too, and places the items of one account together.

The group commit of task submits places task holds with it (one more array: the task ids), and one account's
items of a batch update its row once (through ledger_place_task_holds) unless its balance does not cover them
all. The old signature is dropped. The function's code is ``shared/ledger/sql/ledger_place_holds.sql`` (see
``shared.ledger.functions``).
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-05T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger_place_holds: task holds, one account's items together"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[
            "DROP FUNCTION IF EXISTS ledger_place_holds(uuid[], uuid[], bigint[], uuid[], text[])",
            function_sql("ledger_place_holds"),
        ],
        backwards=[],
    )
