"""Open lots indexed by ``closed_at IS NULL`` instead of ``remaining > 0``.

The hold's lot lookup (``WHERE account_id = … AND remaining > reserved``) could not use the old partial index:
PostgreSQL cannot prove ``remaining > reserved`` implies ``remaining > 0``, so every hold scanned the whole
table (20 ms at 200,000 lots). The expiry sweep and refunds had the same problem. The lookups now name
``closed_at IS NULL`` (a lot is closed exactly when nothing remains in it: ``conduit ledger check`` verifies it),
which the new indexes' predicate matches. Because no index names ``remaining`` any more, the updates of a lot's
``remaining`` by every settlement can be HOT (before, about 1 in 7 was HOT under a busy account).

The rows are first made to agree with that rule (it holds for every lot the ledger's code has written), and
the two ledger functions that look lots up are replaced. The indexes are rebuilt without CONCURRENTLY:
``credit_lots`` has one row per grant, small next to the tables that grow with traffic.
"""

from shared.infra.db.raw_migrations import sql_migration
from shared.ledger.functions import function_sql

ID = "2026-12-05T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "credit lots: open-lot indexes on closed_at"


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[
            "UPDATE credit_lots SET closed_at = now() WHERE remaining = 0 AND closed_at IS NULL",
            "UPDATE credit_lots SET closed_at = NULL WHERE remaining > 0 AND closed_at IS NOT NULL",
            "DROP INDEX IF EXISTS credit_lots_spendable",
            "DROP INDEX IF EXISTS credit_lots_expiring",
            "CREATE INDEX credit_lots_spendable ON credit_lots (account_id, expires_at) WHERE closed_at IS NULL",
            "CREATE INDEX credit_lots_expiring ON credit_lots (expires_at) WHERE closed_at IS NULL"
            " AND expires_at IS NOT NULL",
            function_sql("ledger_place_hold"),
            function_sql("ledger_place_task_holds"),
        ],
        backwards=[
            "DROP INDEX IF EXISTS credit_lots_spendable",
            "DROP INDEX IF EXISTS credit_lots_expiring",
            "CREATE INDEX credit_lots_spendable ON credit_lots (account_id, expires_at) WHERE remaining > 0",
            "CREATE INDEX credit_lots_expiring ON credit_lots (expires_at) WHERE remaining > 0"
            " AND expires_at IS NOT NULL",
        ],
    )
