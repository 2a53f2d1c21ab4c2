"""Whether an exception means the database connection was lost or could not be made.

A restart of PostgreSQL or PgBouncer, a failover or a network cut breaks the queries in flight and refuses new
connections for a moment. That is no bug of the request: the API answers it with a 503 the client may retry
(``api.errors``), and the request's transaction, which did not commit, changed nothing.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

# SQLSTATEs of a connection that is gone or refused: class 08 (connection exception, which is also what PgBouncer
# answers when it cannot reach a server), 57P01-57P05 (the server shuts down, crashed, is starting, the database was
# dropped, the session timed out) and 53300 (too many connections). 57014 (a cancelled query) is not among them.
_LOST_SQLSTATE_PREFIXES = ("08", "57P0", "53300")

# asyncpg's InterfaceError says why in its message; only these mean the connection or the pool is gone.
_LOST_INTERFACE_MESSAGES = ("connection is closed", "pool is closed", "pool is closing")

_ASYNCPG_DIR = str(Path(asyncpg.__file__).parent)


def is_lost_connection(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from or while handling, says the database connection
    was lost or could not be made."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if _says_lost(current):
            return True
        pending.extend(link for link in (current.__cause__, current.__context__) if link is not None)
    return False


def _says_lost(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate.startswith(_LOST_SQLSTATE_PREFIXES)
    if isinstance(exc, asyncpg.InterfaceError):
        return any(message in str(exc) for message in _LOST_INTERFACE_MESSAGES)
    # A refused or reset socket, or a connection attempt that timed out (TimeoutError is an OSError). Only when
    # raised by asyncpg: the same errors from a file write or another client are not the database's.
    if isinstance(exc, OSError):
        return _raised_in_asyncpg(exc)
    return False


def _raised_in_asyncpg(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename.startswith(_ASYNCPG_DIR):
            return True
        traceback = traceback.tb_next
    return False
