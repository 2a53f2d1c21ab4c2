"""Piccolo configuration. The engine is created here without connecting; processes set its DSN from
``Settings`` before opening their pool (see ``shared.infra.db.Database``). ``DATABASE_URL`` is read here only for
Piccolo's own command-line tool (``piccolo migrations new conduit --auto``)."""

import os

from piccolo.conf.apps import AppRegistry

from shared.infra.db.engine import LazyPostgresEngine

DB = LazyPostgresEngine(
    config={"dsn": os.environ.get("DATABASE_URL", "postgresql://postgres@localhost:5432/conduit")},
    extensions=(),
)

APP_REGISTRY = AppRegistry(apps=["shared.infra.db.piccolo_app"])
