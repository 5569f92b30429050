"""Statements as values: what a run sends before its own (BEGIN, settings), in one
round trip, and the text that carries the run's first statement with them."""

from __future__ import annotations

import select
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

Statement = tuple[sql.SQL | sql.Composed, Sequence[Any] | Mapping[str, Any] | None]
# A handler's statement: its SQL (text or composed) and its values.
StatementText = tuple[str | sql.SQL | sql.Composed, Sequence[Any] | Mapping[str, Any] | None]

BEGIN = sql.SQL("BEGIN")
PING = sql.SQL("SELECT 1")
REFUSE_SEVERAL = sql.SQL(
    "DO $$ BEGIN RAISE EXCEPTION 'cannot insert multiple commands into a prepared statement'"
    " USING ERRCODE = 'syntax_error'; END $$"
)


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


def bound(conn: psycopg.AsyncConnection[Any], statements: Sequence[StatementText]) -> sql.SQL:
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


def quiet(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether nothing has arrived on `conn` since it went idle in the pool: a live
    server sends nothing unasked, a stopping one its goodbye and the end of the
    stream. A poll of the socket, no round trip."""
    try:
        socket = conn.pgconn.socket
    except psycopg.Error:  # closed: sending finds that out
        return False
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    return not poller.poll(0)


def without_text(exc: psycopg.Error) -> psycopg.Error:
    """`exc` without the part of its message that quotes the text it was sent in
    (`LINE 1: ...`, for an error at a position): that text holds the run's values
    and settings as literals, which must not reach a log. The server's own
    message stays."""
    primary = exc.diag.message_primary
    if primary and exc.diag.statement_position:
        exc.args = (primary,)
    return exc


def together(
    conn: psycopg.AsyncConnection[Any], first: Sequence[Statement], statement: StatementText
) -> sql.SQL | StatementText | None:
    """What `send_together` sends: the statement alone when `first` is empty, else
    `first` (BEGIN and settings) and the statement as one text. None when they
    cannot go together (Database.acquire_with says when); whatever the binder
    refuses goes apart."""
    if not first:
        return statement
    query, params = statement
    if params is None or first[0][0] is not BEGIN:
        return None
    values = params.values() if isinstance(params, Mapping) else params
    if any(type(value) is float for value in values):
        return None
    try:
        return bound(conn, [*first, (query, params)])
    except Exception:
        return None


async def send_together(
    conn: psycopg.AsyncConnection[Any], skipped: int, text: sql.SQL | StatementText
) -> psycopg.AsyncCursor[Any]:
    """Send `text` (what `together` made); the cursor on the run's statement's
    result, past the `skipped` results of what went before it in the same text."""
    if not isinstance(text, sql.SQL):
        return await conn.execute(*text)
    cursor = conn.cursor()
    await cursor.execute(text)
    for _ in range(skipped):
        cursor.nextset()
    if cursor.nextset():
        # Refused, as server-side binding refuses it, and by the server, so that the
        # transaction is aborted as that leaves it: what the text ran never commits.
        await conn.execute(REFUSE_SEVERAL)
    return cursor
