"""Cursor pagination and filter checks shared by the list endpoints: newest first, ``after`` = the last id of
the previous page. Each check raises ``InvalidInput`` naming the parameter at fault."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid

MAX_PAGE = 100


def page_cursor(limit: int, after: str | None, *, max_page: int = MAX_PAGE) -> uuid.UUID | None:
    """Check ``limit`` and parse ``after``."""
    if not 1 <= limit <= max_page:
        raise InvalidInput(f"limit must be between 1 and {max_page}", param="limit")
    if after is None:
        return None
    cursor = parse_uuid(after)
    if cursor is None:
        raise InvalidInput("after must be a cursor returned by a previous page", param="after")
    return cursor


def id_filter(value: str | None, param: str) -> uuid.UUID | None:
    """An optional id filter (``?task_id=…``)."""
    if value is None:
        return None
    parsed = parse_uuid(value)
    if parsed is None:
        raise InvalidInput(f"{param} must be an id", param=param)
    return parsed


def choice_filter(value: str | None, allowed: Collection[str], param: str) -> str | None:
    """An optional filter that must be one of ``allowed`` (``?status=…``)."""
    if value is not None and value not in allowed:
        raise InvalidInput(f"{param} must be one of: {', '.join(allowed)}", param=param)
    return value
