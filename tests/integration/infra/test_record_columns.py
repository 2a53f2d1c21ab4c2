"""Each record's fields against a migrated database: a column renamed, dropped or retyped by a migration fails
here, not in a query in production."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import pytest

import shared
from shared.infra.db import Connection
from shared.infra.db.records import JSONB, MAPPINGS, Column, RecordMapping
from shared.services import Services
from shared.tasks.records import TASK_ROWS


@pytest.fixture
async def conn(services: Services) -> AsyncIterator[Connection]:
    async with services.db.connection() as connection:
        yield connection


def every_mapping() -> list[RecordMapping[Any]]:
    """The mappings of every module of ``shared`` (importing a module registers its mappings)."""
    for module in pkgutil.walk_packages(shared.__path__, prefix="shared."):
        importlib.import_module(module.name)
    return [mapping for mapping in MAPPINGS if mapping.record.__module__.startswith("shared.")]


async def mismatches(conn: Connection, mapping: RecordMapping[Any]) -> list[str]:
    """What is wrong with the mapping's select list on this database: a field that is not a column, or a
    JSONB column read as text (or text decoded as JSON)."""
    try:
        statement = await conn.prepare(f"SELECT {mapping.columns} FROM {mapping.source} LIMIT 0")
    except asyncpg.PostgresError as exc:
        return [f"{mapping}: {exc}"]
    found = {attribute.name: attribute.type.name for attribute in statement.get_attributes()}
    problems = [
        f"{mapping}: reads {key!r}, which the query does not return" for key in mapping.keys if key not in found
    ]
    for key, type_name in found.items():
        if (type_name == "jsonb") != (key in mapping.json_keys):
            problems.append(f"{mapping}: {key!r} is {type_name}, {'' if key in mapping.json_keys else 'not '}decoded")
    return problems


async def test_every_record_reads_columns_its_table_has(conn: Connection) -> None:
    mappings = every_mapping()
    assert TASK_ROWS in mappings
    problems = [problem for mapping in mappings for problem in await mismatches(conn, mapping)]
    assert problems == []


@dataclasses.dataclass(frozen=True, slots=True)
class DriftedTask:
    id: uuid.UUID
    model_name: str  # the column is "model"
    input: dict[str, Any]  # JSONB, not marked
    outputs: Annotated[list[Any], JSONB]
    held: Annotated[int, Column("credits_held")]


async def test_a_record_that_drifted_from_its_table_is_reported(conn: Connection) -> None:
    drifted = RecordMapping(DriftedTask, "tasks")
    assert await mismatches(conn, drifted) == [
        "RecordMapping(DriftedTask, 'tasks'): column \"model_name\" does not exist"
    ]
    without_the_bad_column = RecordMapping(DriftedTask, "(SELECT *, model AS model_name FROM tasks) t")
    assert await mismatches(conn, without_the_bad_column) == [
        "RecordMapping(DriftedTask, '(SELECT *, model AS model_name FROM tasks) t'): 'input' is jsonb, not decoded"
    ]
