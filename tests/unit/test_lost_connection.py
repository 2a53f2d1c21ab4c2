"""Which exceptions mean the database connection was lost or refused: those answer 503, the others stay 500."""

from __future__ import annotations

import socket

import asyncpg
import pytest

from shared.infra.db.lost import is_lost_connection
from tests.harness import free_port


def server_error(sqlstate: str, message: str) -> asyncpg.PostgresError:
    """The exception asyncpg raises for an ErrorResponse from the server (or PgBouncer) with this SQLSTATE."""
    return asyncpg.PostgresError.new({"C": sqlstate, "M": message, "S": "FATAL"})


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.InterfaceError("pool is closing"),
        server_error("57P01", "terminating connection due to administrator command"),
        server_error("57P02", "terminating connection because of crash of another server process"),
        server_error("57P03", "the database system is starting up"),
        server_error("53300", "sorry, too many clients already"),
        server_error("08006", "connection failure"),
        server_error("08P01", "server conn crashed?"),  # PgBouncer losing its server connection
    ],
    ids=lambda exc: f"{type(exc).__name__}: {exc}",
)
def test_asyncpg_errors_of_a_lost_or_refused_connection_are_lost(exc: BaseException) -> None:
    assert is_lost_connection(exc)


def test_the_sqlstate_classes_map_to_asyncpg_classes() -> None:
    assert isinstance(server_error("57P01", "x"), asyncpg.AdminShutdownError)
    assert isinstance(server_error("57P03", "x"), asyncpg.CannotConnectNowError)
    assert isinstance(server_error("53300", "x"), asyncpg.TooManyConnectionsError)
    assert isinstance(server_error("08006", "x"), asyncpg.ConnectionFailureError)


async def test_a_refused_connection_is_lost() -> None:
    with pytest.raises(ConnectionRefusedError) as refused:  # nothing listens on the port
        await asyncpg.connect(host="127.0.0.1", port=free_port(), user="x", database="x", timeout=5)
    assert is_lost_connection(refused.value)


@pytest.mark.parametrize(
    "exc",
    [
        server_error("23505", "duplicate key value violates unique constraint"),
        server_error("57014", "canceling statement due to statement timeout"),
        server_error("40001", "could not serialize access"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        RuntimeError("boom"),
    ],
    ids=lambda exc: f"{type(exc).__name__}: {exc}",
)
def test_other_errors_are_not_lost(exc: BaseException) -> None:
    assert not is_lost_connection(exc)


def test_a_unique_violation_is_an_asyncpg_error_but_not_lost() -> None:
    exc = server_error("23505", "duplicate key value violates unique constraint")
    assert isinstance(exc, asyncpg.UniqueViolationError)
    assert not is_lost_connection(exc)


def test_socket_errors_not_raised_by_asyncpg_are_not_the_database() -> None:
    with pytest.raises(ConnectionRefusedError) as refused, socket.create_connection(("127.0.0.1", free_port())):
        pass
    assert not is_lost_connection(refused.value)
    with pytest.raises(FileNotFoundError) as missing, open("/nonexistent/conduit/file"):
        pass
    assert not is_lost_connection(missing.value)


def raised_while_handling(original: BaseException, new: BaseException, *, chained: bool) -> BaseException:
    """``new`` as raised in an ``except`` block of ``original``: its __cause__ (chained) or __context__ is it."""
    try:
        try:
            raise original
        except BaseException:
            if chained:
                raise new from original
            raise new  # noqa: B904 - the implicit chain (__context__) is what is tested
    except BaseException as exc:
        return exc
    raise AssertionError("unreachable")


def test_a_lost_connection_is_found_through_the_cause_and_the_context() -> None:
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert is_lost_connection(raised_while_handling(lost, RuntimeError("could not settle"), chained=True))
    assert is_lost_connection(raised_while_handling(lost, KeyError("while rolling back"), chained=False))
    twice = raised_while_handling(lost, ValueError("inner"), chained=True)
    assert is_lost_connection(raised_while_handling(twice, RuntimeError("outer"), chained=False))

    conflict = server_error("23505", "duplicate key")
    assert not is_lost_connection(raised_while_handling(conflict, RuntimeError("conflict"), chained=True))
