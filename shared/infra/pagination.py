"""Cursor pagination shared by the list endpoints: newest first, ``after`` = the last id of the previous page.

The checks of ``limit``, ``after`` and filters raise ``InvalidInput`` naming the parameter at fault. A list
query fetches ``limit + 1`` rows; ``Page.of`` keeps ``limit`` of them and says whether more follow. Every list
route answers in one shape, ``list_envelope`` (``page_envelope`` adds ``has_more`` and ``next_cursor``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import msgspec

from shared.infra.errors import InvalidInput
from shared.infra.ids import parse_uuid

if TYPE_CHECKING:
    from shared.infra.db import Record

MAX_PAGE = 100

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items of a list, and the ``after`` cursor of the next page (None: this page is the last)."""

    items: list[T]
    next_cursor: str | None = None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None

    @classmethod
    def of(cls, rows: Sequence[Record], limit: int, item: Callable[[Record], T]) -> Page[T]:
        """The page of ``rows`` fetched with ``LIMIT limit + 1`` (each with an ``id``), each turned by ``item``."""
        shown = rows[:limit]
        more = len(rows) > limit and bool(shown)
        return cls([item(row) for row in shown], str(shown[-1]["id"]) if more else None)

    def map(self, shape: Callable[[T], U]) -> Page[U]:
        """The same page with each item shaped (e.g. as the API shows it)."""
        return Page([shape(item) for item in self.items], self.next_cursor)


class ListEnvelope(msgspec.Struct, Generic[T], kw_only=True):
    """The answer of a list route: ``{"object": "list", "data": [...]}`` (in the OpenAPI document: ``TList``)."""

    object: Literal["list"] = "list"
    data: list[T]


class PageEnvelope(ListEnvelope[T], Generic[T], kw_only=True):
    """The answer of a paginated list route: the list with ``has_more`` and ``next_cursor`` (``TPage``)."""

    has_more: bool
    next_cursor: str | None


def list_envelope(data: list[T]) -> ListEnvelope[T]:
    return ListEnvelope(data=data)


def page_envelope(page: Page[T]) -> PageEnvelope[T]:
    return PageEnvelope(data=page.items, has_more=page.has_more, next_cursor=page.next_cursor)


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
