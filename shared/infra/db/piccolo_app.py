"""Piccolo app definition: the tables and where their migrations live (``migrations/`` at the root)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from shared.infra.db.tables import TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"

APP_CONFIG = AppConfig(
    app_name="conduit",
    migrations_folder_path=str(MIGRATIONS_DIR),
    table_classes=TABLES,
    migration_dependencies=[],
    commands=[],
)
