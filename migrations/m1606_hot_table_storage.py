"""Storage settings of the tables every hold and settlement writes, so their cost stays flat as they grow.

``accounts``, ``credit_lots`` and ``api_keys`` are updated in place by every hold and settlement (balances,
reservations, a key's spend), mostly on columns no index covers: free space on each page (fillfactor) lets those
updates stay HOT (no new index entries, pruned on the page without VACUUM), and autovacuum visits them after a
fixed number of dead rows rather than a fraction of a tiny table. ``holds`` and ``tasks`` are updated once or
twice per row: a little free space, and autovacuum at 5% dead rows. ``ledger_entries``, ``usage_records`` and
``hold_allocations`` are append-mostly: autovacuum after 5% new rows keeps their visibility map current and
analyze keeps the planner's statistics up with the growth.
"""

from shared.infra.db.raw_migrations import sql_migration

ID = "2026-12-04T16:51:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "hot tables: fillfactor and autovacuum settings"

_HOT_IN_PLACE = "fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000"
_UPDATED_ONCE = "fillfactor = 90, autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02"
_APPEND_MOSTLY = "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02"

SETTINGS = {
    "accounts": _HOT_IN_PLACE,
    "credit_lots": _HOT_IN_PLACE,
    "api_keys": _HOT_IN_PLACE,
    "holds": _UPDATED_ONCE,
    "tasks": _UPDATED_ONCE,
    "ledger_entries": _APPEND_MOSTLY,
    "usage_records": _APPEND_MOSTLY,
    "hold_allocations": _APPEND_MOSTLY,
}


def _names(settings: str) -> str:
    return ", ".join(part.split("=")[0].strip() for part in settings.split(","))


async def forwards():
    return sql_migration(
        ID,
        DESCRIPTION,
        forwards=[f"ALTER TABLE {table} SET ({settings})" for table, settings in SETTINGS.items()],
        backwards=[f"ALTER TABLE {table} RESET ({_names(settings)})" for table, settings in SETTINGS.items()],
    )
