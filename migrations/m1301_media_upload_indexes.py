"""Indexes of uploads: an account's list (newest first) and the retention sweep (by expiry)."""

from shared.infra.db.raw_migrations import index_migration

ID = "2026-12-04T13:00:01:000000"
VERSION = "1.38.0"
DESCRIPTION = "media upload indexes"

STATEMENTS = [
    "CREATE INDEX media_uploads_account_list ON media_uploads (account_id, id DESC)",
    "CREATE INDEX media_uploads_expires ON media_uploads (expires_at)",
]


async def forwards():
    return index_migration(ID, DESCRIPTION, STATEMENTS)
