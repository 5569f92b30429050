"""Statements as values: what a run sends before its own (BEGIN, settings), in one
round trip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

Statement = tuple[sql.SQL | sql.Composed, Sequence[Any] | Mapping[str, Any] | None]


async def send(conn: psycopg.AsyncConnection[Any], statements: Sequence[Statement]) -> None:
    """Run `statements` in one round trip.

    Several go as one text in the simple query protocol, their values bound on the
    client as quoted literals (psycopg's ClientCursor does the quoting): a pipeline
    would also take one round trip, but costs several times the CPU in psycopg.
    """
    if len(statements) == 1:
        await conn.execute(*statements[0])
        return
    await conn.execute(bound(conn, statements))


def bound(
    conn: psycopg.AsyncConnection[Any],
    statements: Sequence[
        tuple[str | sql.SQL | sql.Composed, Sequence[Any] | Mapping[str, Any] | None]
    ],
) -> sql.SQL:
    """`statements` as one text for the simple query protocol, each value a literal
    quoted by psycopg's ClientCursor (with the connection's encoding and settings)."""
    binder = psycopg.AsyncClientCursor(conn)
    text = "; ".join(
        [
            binder.mogrify(statement, params)
            if params is not None or isinstance(statement, str)
            else statement.as_string(conn)  # no values: nothing to bind (BEGIN)
            for statement, params in statements
        ]
    )
    return sql.SQL(text)  # literals psycopg quoted


def timeout_statement(seconds: float) -> Statement:
    """`SET LOCAL statement_timeout`, as a statement that takes its value as a parameter."""
    return (
        sql.SQL("SELECT set_config('statement_timeout', %s, true)"),
        (str(int(seconds * 1000)),),
    )
