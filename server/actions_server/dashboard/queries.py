"""What the dashboard reads, one function per page section (SQL in queries.sql)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ..db.pool import Connection
from ..db.sqlfile import load_queries
from ..mail.transports import Q as MAIL_QUERIES
from ..runs.store import first_id_at

Q = load_queries(Path(__file__).with_name("queries.sql"))
Row = dict[str, Any]
PAGE = 50
LAST_ID = uuid.UUID(int=(1 << 128) - 1)


async def _all(conn: Connection, query: str, params: Any = None) -> list[Row]:
    cursor = await conn.execute(query, params)
    return await cursor.fetchall()


async def action_stats(conn: Connection, actions: list[str], window_seconds: float) -> list[Row]:
    """Per action: the last run's status, and runs, errors, p50 and p95 in the window."""
    since = first_id_at(time.time() - window_seconds)
    return await _all(conn, Q["action_stats"], {"actions": actions, "since": since})


async def runs(
    conn: Connection,
    *,
    action: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    trace_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: uuid.UUID | None = None,
    limit: int = PAGE,
) -> list[Row]:
    """Runs newest first, started in [since, until); `before` is the last id of the
    previous page."""
    if until is not None:
        before = min(before or LAST_ID, first_id_at(until))
    params = {
        "action": action,
        "status": status,
        "trigger": trigger,
        "trace_id": trace_id,
        "since": first_id_at(since) if since is not None else uuid.UUID(int=0),
        "before": before or LAST_ID,
        "limit": limit,
    }
    return await _all(conn, Q["runs"], params)


async def run(conn: Connection, run_id: uuid.UUID) -> Row | None:
    rows = await _all(conn, Q["run"], (run_id,))
    return rows[0] if rows else None


async def run_logs(conn: Connection, run_id: uuid.UUID) -> list[Row]:
    return await _all(conn, Q["run_logs"], (run_id,))


async def run_tree(conn: Connection, run_id: uuid.UUID) -> list[Row]:
    return await _all(conn, Q["run_tree"], {"id": run_id})


async def jobs(conn: Connection, status: str, limit: int = 100) -> list[Row]:
    return await _all(conn, Q["jobs"], {"status": status, "limit": limit})


async def cron_runs(conn: Connection, actions: list[str]) -> list[Row]:
    return await _all(conn, Q["cron_runs"], {"actions": actions})


async def misfires(conn: Connection) -> list[Row]:
    return await _all(conn, Q["misfires"])


async def events(conn: Connection, limit: int = 100) -> list[Row]:
    return await _all(conn, Q["events"], {"limit": limit})


async def outbox(conn: Connection, limit: int = 50) -> list[Row]:
    return await _all(conn, MAIL_QUERIES["recent"], (limit,))
