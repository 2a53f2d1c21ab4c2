"""Cursor pagination shared by the list endpoints: newest first, ``after`` = the last id of the previous page."""

from __future__ import annotations

import uuid

from shared.errors import InvalidInput
from shared.ids import parse_uuid

MAX_PAGE = 100


def page_cursor(limit: int, after: str | None, *, max_page: int = MAX_PAGE) -> uuid.UUID | None:
    """Check ``limit`` and parse ``after``; raises ``InvalidInput`` naming the parameter at fault."""
    if not 1 <= limit <= max_page:
        raise InvalidInput(f"limit must be between 1 and {max_page}", param="limit")
    if after is None:
        return None
    cursor = parse_uuid(after)
    if cursor is None:
        raise InvalidInput("after must be a cursor returned by a previous page", param="after")
    return cursor
