"""An API key as the API shows it to its owner (``KeyView.public()`` in ``shared.accounts.key_management``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from shared.accounts.key_limits import Budget
from shared.ledger.money import Credits


class KeyRateLimits(msgspec.Struct):
    """A key's own rate limits; null: the platform's default for a key (the account's own limits apply as well)."""

    requests_per_minute: int | None
    max_inflight_tasks: int | None


class ApiKey(msgspec.Struct):
    """An API key as its owner sees it; ``secret`` only in the answer that creates or rotates it."""

    id: str
    object: Literal["api_key"]
    name: str
    prefix: str
    status: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    rotated_at: dt.datetime | None
    allowed_models: list[str] | None
    spend_cap: Credits | None
    spent: Credits
    spend_reserved: Credits
    spend_remaining: Credits | None
    rate_limits: KeyRateLimits
    created_by: str | None  # the member who made it (null: made before teams, or by the command line)
    role: str  # the role it acts with: its creator's role when it was made
    budget: Budget | None
    budget_remaining: Credits | None
    resets_at: dt.datetime | None
    secret: str | msgspec.UnsetType = msgspec.UNSET
