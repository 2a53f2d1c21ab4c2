"""Records read from rows: a frozen dataclass states once which columns a query reads and what each becomes.

``RecordMapping(SomeRecord, source)`` derives both from the dataclass's fields, once at import: ``columns``,
the select list for ``SELECT`` and ``RETURNING``, and ``from_row``, which turns a row holding those columns
into a record. A field is the column of its own name (``alias.name`` when the mapping has an ``alias``)
unless its annotation carries a ``Column``:

* ``Annotated[int, Column("cap_held")]``, ``Annotated[str, Column("k.prefix")]``: another column (of this
  table or a joined one), selected ``AS`` the field's name;
* ``Annotated[bool, Column("(expires_at <= now())")]``: a computed value, selected the same way;
* ``Annotated[dict[str, Any], JSONB]``: a JSONB column, decoded into Python values (``None`` stays ``None``);
* ``Annotated[tuple[Attempt, ...], FILLED_BY_CALLER] = ()``: not read from the row; ``from_row(row,
  name=value)`` sets it. These fields come after every column field.

``from_row`` reads columns by name, so a row may hold more columns than the record (``t.*``, an extra
``RETURNING`` value) in any order. Every mapping is listed in ``MAPPINGS`` so that a test can check each
record against a migrated database: a column renamed or dropped in a migration fails that test instead of a
query in production.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.infra.db import Record, from_json

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    """Where a record's field comes from: ``sql``, the select expression (None: the column of the field's
    name); ``json``, decode a JSONB value; ``selected=False``, a field the caller fills, not a column."""

    sql: str | None = None
    json: bool = False
    selected: bool = True


JSONB = Column(json=True)
FILLED_BY_CALLER = Column(selected=False)
_PLAIN = Column()


class RecordMapping(Generic[R]):
    """How rows of ``source`` (a table, or tables joined with ``alias`` naming the record's own) become
    ``record``s. ``keys`` are the row keys that ``from_row`` reads, in the order of ``columns``; ``json_keys``
    those it decodes from JSONB."""

    __slots__ = ("_json_positions", "_values", "columns", "json_keys", "keys", "record", "source")

    def __init__(self, record: type[R], source: str, *, alias: str | None = None) -> None:
        self.record = record
        self.source = source
        hints = typing.get_type_hints(record, include_extras=True)
        selects: list[str] = []
        keys: list[str] = []
        json_positions: list[int] = []
        filled: list[str] = []
        for field in dataclasses.fields(record):
            spec = next((x for x in getattr(hints[field.name], "__metadata__", ()) if isinstance(x, Column)), _PLAIN)
            if not spec.selected:
                filled.append(field.name)
                continue
            if filled:
                raise TypeError(f"{record.__name__}.{field.name}: a column after {filled[0]}, which the caller fills")
            if spec.json:
                json_positions.append(len(keys))
            keys.append(field.name)
            if spec.sql is not None:
                selects.append(f"{spec.sql} AS {field.name}")
            else:
                selects.append(f"{alias}.{field.name}" if alias else field.name)
        if len(keys) < 2:
            raise TypeError(f"{record.__name__}: a record reads at least two columns")
        self.columns = ", ".join(selects)
        self.keys = tuple(keys)
        self._json_positions = tuple(json_positions)
        self.json_keys = tuple(keys[position] for position in json_positions)
        self._values: Callable[[Record], tuple[Any, ...]] = itemgetter(*keys)  # every column in one C call
        MAPPINGS.append(self)

    def from_row(self, row: Record, **filled: Any) -> R:
        """The record of ``row``; ``filled`` gives the fields that the caller fills."""
        values = self._values(row)
        if self._json_positions:
            decoded = list(values)
            for position in self._json_positions:
                decoded[position] = from_json(decoded[position])
            return self.record(*decoded, **filled)
        return self.record(*values, **filled)

    def __repr__(self) -> str:
        return f"RecordMapping({self.record.__name__}, {self.source!r})"


MAPPINGS: list[RecordMapping[Any]] = []
