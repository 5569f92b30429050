"""Scheduled maintenance of the example app's own tables."""

from __future__ import annotations

from typing import Any

from actions_server import Context


async def daily_cleanup(input: dict[str, Any], ctx: Context) -> dict[str, int]:
    expired = await ctx.db.raw(
        "DELETE FROM invitations WHERE accepted_at IS NULL"
        " AND expires_at < now() - interval '30 days' RETURNING id"
    )
    ctx.logger.info("daily cleanup", invitations=len(expired))
    return {"invitations": len(expired)}


async def hourly_metrics(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    [counts] = await ctx.db.raw(
        "SELECT date_trunc('hour', now()) AS hour,"
        " count(*) FILTER (WHERE status = 'done') AS jobs_done,"
        " count(*) FILTER (WHERE status = 'dead') AS jobs_dead,"
        " count(*) FILTER (WHERE status = 'queued') AS jobs_queued"
        " FROM actions_server.jobs"
    )
    await ctx.db.table("metrics_hourly").upsert(counts, on_conflict="hour")
    return {"jobs_done": counts["jobs_done"], "jobs_dead": counts["jobs_dead"]}


async def heartbeat(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # No database, no KV: a tick that costs a run record and nothing else.
    ctx.logger.info("heartbeat")
    return {"run_id": str(ctx.run.id)}
