"""The framework's own housekeeping, run once per cluster every hour.

Prunes finished jobs and events past `queue.retention_days` (dead jobs past
`queue.dead_retention_days`), cron ticks past twice the longer of the two (a
tick must outlive any job it created, or it could run again), and expired KV
rows (which reads already ignore), rate-limit counters among them, runs with
their log lines past `runs.retention_days`, expired receipts (Idempotency-Key
answers, webhook deliveries), revoked tokens past their expiry, and realtime
channel messages past `realtime.retention_minutes` (they are kept only for
listeners catching up). The scheduler runs it in the instance that wins the tick.
"""

from __future__ import annotations

import logging

from . import receipts
from .auth import revocation
from .config import Config
from .db.pool import Connection
from .queue import store
from .realtime import store as channel_store
from .runs import store as runs_store

log = logging.getLogger("actions_server.maintenance")

MAINTENANCE_TICK = "actions_server.maintenance"
MAINTENANCE_CRON = "17 * * * *"


async def run_maintenance(conn: Connection, config: Config) -> dict[str, int]:
    pruned = await store.prune(
        conn, keep_days=config.queue.retention_days, keep_dead_days=config.queue.dead_retention_days
    )
    pruned.update(await runs_store.prune(conn, keep_days=config.runs.retention_days))
    pruned["receipts"] = await receipts.prune(conn)
    pruned["revoked tokens"] = await revocation.prune(conn)
    pruned["channel messages"] = await channel_store.prune(
        conn, keep_minutes=config.realtime.retention_minutes
    )
    log.info("maintenance: pruned %s", ", ".join(f"{n} {what}" for what, n in pruned.items()))
    return pruned
