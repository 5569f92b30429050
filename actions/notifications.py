"""Notifications: events in, mail out (ctx.mail queues each message as a job)."""

from __future__ import annotations

from typing import Any

from actions_server import Context


async def on_user_created(input: dict[str, Any], ctx: Context) -> None:
    # Rendered now from templates/mail/welcome.*; a built-in job delivers it.
    await ctx.mail.send(
        input["email"],
        template="welcome",
        data={"name": input.get("name") or input["email"], "email": input["email"]},
    )


async def on_report_generated(input: dict[str, Any], ctx: Context) -> None:
    requester = await ctx.db.table("users").select("email").eq("id", ctx.auth.user_id).single()
    if requester is not None:
        await ctx.mail.send(
            requester["email"], template="report_ready", data={"projects": input["projects"]}
        )
