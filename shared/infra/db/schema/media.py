"""Input media: files an account uploaded to use as model inputs."""

from __future__ import annotations

from piccolo.columns import UUID, BigInt, DoublePrecision, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check
from piccolo.table import Table

from shared.infra.db.schema.accounts import Account


class MediaUpload(Table, tablename="media_uploads"):
    """One uploaded image or video; the bytes live in storage under ``storage_key`` until ``expires_at``."""

    id = UUID(primary_key=True)
    account_id = ForeignKey(Account, null=False, on_delete=OnDelete.cascade)  # indexed with id (m1301)
    content_type = Varchar(length=32)  # detected from the bytes, never taken from the client
    size_bytes = BigInt()
    width = Integer(null=True, default=None)
    height = Integer(null=True, default=None)
    duration_s = DoublePrecision(null=True, default=None)
    storage_key = Varchar(length=200)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()

    media_uploads_size_check = Check("size_bytes > 0")
