"""Fixed-window counters in PostgreSQL (the rate_limit guard's store, until KV lands).

One atomic upsert per hit: the row's lock serialises concurrent hits, a new
window resets the count, and a hit stamped with an older window (a clock a
little behind on another instance) counts in the current one.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

from ..errors import DatabaseUnavailable
from .pool import Database

_HIT = """
INSERT INTO actions_server.rate_limits AS r (key, window_start, count, expires_at)
VALUES (%(key)s, %(start)s, 1, to_timestamp(%(end)s))
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN EXCLUDED.window_start <= r.window_start THEN r.count + 1 ELSE 1 END,
    window_start = GREATEST(r.window_start, EXCLUDED.window_start),
    expires_at = GREATEST(r.expires_at, EXCLUDED.expires_at)
RETURNING count
"""


async def hit_counter(database: Database, key: str, window_start: float, window_end: float) -> int:
    """Count one hit on `key` in the window starting at `window_start`; the count so far."""
    try:
        async with database.side_pool.connection(timeout=database.acquire_timeout) as conn:
            cursor = await conn.execute(
                _HIT, {"key": key, "start": window_start, "end": window_end}
            )
            row = await cursor.fetchone()
    except (PoolTimeout, psycopg.OperationalError):
        raise DatabaseUnavailable() from None
    assert row is not None
    return int(row["count"])
