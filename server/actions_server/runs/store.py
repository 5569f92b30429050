"""Reading and pruning recorded runs (the recorder writes them with COPY)."""

from __future__ import annotations

import time
import uuid

from ..db.pool import Connection

# Run ids are UUIDv7 (see executor.new_run_id): everything before a moment sorts
# below the smallest id of that millisecond, so pruning is a range of the keys.
PRUNE = """
WITH runs AS (
    DELETE FROM actions_server.runs WHERE id < %(before)s RETURNING 1
), logs AS (
    DELETE FROM actions_server.run_logs WHERE run_id < %(before)s RETURNING 1
)
SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM logs) AS run_logs
"""


def first_id_at(unix_seconds: float) -> uuid.UUID:
    """The smallest UUIDv7 of that moment: every run id made earlier sorts below it."""
    milliseconds = min(max(int(unix_seconds * 1000), 0), (1 << 48) - 1)  # what 48 bits hold
    return uuid.UUID(int=milliseconds << 80)


async def prune(conn: Connection, *, keep_days: int) -> dict[str, int]:
    """Delete runs and log lines older than `keep_days`; how many of each went."""
    before = first_id_at(time.time() - keep_days * 86400)
    cursor = await conn.execute(PRUNE, {"before": before})
    row = await cursor.fetchone()
    return {k: int(v) for k, v in (row or {}).items()}
