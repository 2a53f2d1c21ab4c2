"""Piccolo's PostgreSQL engine without its import-time connection.

``piccolo.engine.base.Engine.__init__`` connects to the database to check its version (and to create
extensions) while ``piccolo_conf.py`` is being imported. That is an import-time side effect: it reaches
for a server the process may not be configured for yet, and warns when there is none. Conduit opens
connections only when a process starts (``Database.connect``); this engine does nothing until then.
"""

from __future__ import annotations

from piccolo.engine.postgres import PostgresEngine


class LazyPostgresEngine(PostgresEngine):
    async def check_version(self) -> None:
        return None

    async def prep_database(self) -> None:
        return None
