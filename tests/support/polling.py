"""Looking at the database from a test, and waiting for background work to show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import psycopg
from psycopg.rows import dict_row


def connect(dsn: str) -> Coroutine[Any, Any, psycopg.AsyncConnection[dict[str, Any]]]:
    """An autocommit connection of the test's own (`async with await connect(dsn)`),
    rows as dicts: what the queue's and maintenance's functions take."""
    return psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)


def query(dsn: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run one statement on its own autocommit connection; its rows (none for a write)."""
    with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []


async def eventually(check: Any, seconds: float = 30.0) -> Any:
    """Call `check` until it returns something true, and return that; fail the test
    if `seconds` pass first (a wait that cannot fail would hide what it waits for).

    `seconds` only bounds a failure: a loaded machine makes a passing test slower,
    never a failing one.
    """
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still {result!r} after {seconds:g}s: {_describe(check)}")
        await asyncio.sleep(0.05)


def _describe(check: Any) -> str:
    code = getattr(check, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(check)
