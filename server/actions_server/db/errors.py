"""PostgreSQL errors a client caused (or could not avoid) → HTTP errors.

A unique violation is 409; a foreign key pointing at nothing is 400 and one
still pointed at is 409; a NOT NULL or CHECK violation and invalid input syntax
(SQLSTATE class 22) are 400; a serialization failure, a deadlock or a lock not
available is 409 (worth retrying); a lost connection, a server out of
resources or a statement timeout is 503. Only a lost connection means the
database is down (`connection_lost`). Anything else returns None: a handler
bug, answered with 500. Messages name the table and columns from the server's
diagnostics, never the SQL.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import errors as pg

from ..errors import (
    ActionError,
    BadRequest,
    Conflict,
    DatabaseUnavailable,
    ErrorDetail,
)

_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=")


def _columns(exc: psycopg.Error) -> list[str]:
    detail = exc.diag.message_detail or ""
    match = _KEY.search(detail)
    if match is None:
        return [exc.diag.column_name] if exc.diag.column_name else []
    return [c.strip().strip('"') for c in match.group("columns").split(",")]


def _details(columns: list[str], message: str) -> list[ErrorDetail]:
    return [ErrorDetail("/" + c, message) for c in columns]


def map_database_error(exc: BaseException) -> ActionError | None:
    """The HTTP error for a database exception, or None for a 500."""
    if not isinstance(exc, psycopg.Error):
        return None
    table = exc.diag.table_name or "the table"
    if isinstance(exc, pg.UniqueViolation):
        columns = _columns(exc)
        what = ", ".join(columns) or "key"
        return Conflict(
            f"{what} already exists in {table}", details=_details(columns, "already exists")
        )
    if isinstance(exc, pg.ForeignKeyViolation):
        columns = _columns(exc)
        if "is not present" in (exc.diag.message_detail or ""):
            return BadRequest(
                f"{', '.join(columns) or 'a reference'} points to nothing",
                code="invalid_reference",
                details=_details(columns, "does not exist"),
            )
        return Conflict(f"this {table} is still referenced by other rows", code="still_referenced")
    if isinstance(exc, pg.NotNullViolation):
        columns = _columns(exc)
        return BadRequest(
            f"{', '.join(columns) or 'a value'} is required",
            code="missing_value",
            details=_details(columns, "is required"),
        )
    if isinstance(exc, pg.CheckViolation):
        constraint = exc.diag.constraint_name or "a check"
        return BadRequest(f"the {table} fails {constraint}", code="constraint_violation")
    if isinstance(exc, pg.QueryCanceled):
        return DatabaseUnavailable("the database did not answer in time", code="database_timeout")
    if isinstance(exc, pg.DataError):
        return BadRequest(exc.diag.message_primary or "invalid value", code="invalid_value")
    if isinstance(exc, pg.SerializationFailure | pg.DeadlockDetected | pg.LockNotAvailable):
        return Conflict(
            "the change collided with a concurrent one; retry the request", code="concurrent_update"
        )
    if connection_lost(exc) or (exc.sqlstate or "").startswith("53"):
        return DatabaseUnavailable()
    return None


# Admin shutdown, crash shutdown, cannot connect now: the server went away.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03"})


def connection_lost(exc: BaseException) -> bool:
    """Whether `exc` means the connection to the server is gone (the database is down).

    Client-side connection failures carry no SQLSTATE; class 08 is connection
    exceptions.
    """
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SERVER_GONE
