"""Notifications: events in, e-mail jobs out."""

from __future__ import annotations

from typing import Any

from actions_server import Context


async def on_user_created(input: dict[str, Any], ctx: Context) -> None:
    await ctx.queue.push(
        "sendEmail",
        {"to": input["email"], "template": "welcome", "data": {"name": input.get("name", "")}},
        unique_key=f"welcome:{input['user_id']}",
    )


async def on_report_generated(input: dict[str, Any], ctx: Context) -> None:
    requester = await ctx.db.table("users").select("email").eq("id", ctx.auth.user_id).single()
    if requester is not None:
        await ctx.queue.push(
            "sendEmail",
            {"to": requester["email"], "template": "report_ready", "data": input},
        )


async def send_email(input: dict[str, Any], ctx: Context) -> None:
    # The job id makes a retried send a no-op (delivery is at least once).
    await (
        ctx.db.table("sent_emails")
        .upsert(
            {
                "to_email": input["to"],
                "template": input["template"],
                "data": input.get("data", {}),
                "job_id": ctx.run.job_id,
            },
            on_conflict="job_id",
        )
        .returning()
    )
