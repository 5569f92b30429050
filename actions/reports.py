"""Background reports: the API queues a job; the worker builds it and says so."""

from __future__ import annotations

from typing import Any

from actions_server import Context, NotFound


async def generate(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    [report] = await ctx.db.table("reports").insert(
        {"org_id": ctx.auth.org_id, "requested_by": ctx.auth.user_id}
    )
    # In the same transaction as the row: no job without its report, and no
    # report left queued without a job.
    job_id = await ctx.queue.push("generateReport", {"report_id": str(report["id"])})
    return {"status": "queued", "job_id": job_id, "report_id": str(report["id"])}


async def get(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    report = await ctx.db.table("reports").eq("id", input["id"]).single()
    if report is None:
        raise NotFound(f"no report {input['id']}")
    return {"report": report}


async def process_report(input: dict[str, Any], ctx: Context) -> None:
    # The job runs as the user who asked, inside their org: RLS applies as it did then.
    projects = await ctx.db.table("projects").count()
    rows = await (
        ctx.db.table("reports")
        .eq("id", input["report_id"])
        .eq("status", "queued")  # a retried job that already finished does nothing
        .update({"status": "done", "result": {"projects": projects}, "finished_at": "now"})
    )
    if rows:
        ctx.event.emit("report.generated", {"report_id": input["report_id"], "projects": projects})
        ctx.logger.info("report generated", report_id=input["report_id"], projects=projects)
