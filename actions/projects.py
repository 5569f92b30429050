"""Org-scoped projects. No handler filters by org: Row-Level Security does.

migrations/004_projects_rls.sql lets a run see only the rows of the org that
`in_org` established (app.org_id), so forgetting `.eq("org_id", ...)` cannot
leak another org's projects, and an id from another org is simply not found.
A new project is published on the org's realtime channel (projects.yaml).
"""

from __future__ import annotations

from typing import Any

from actions_server import Context, NotFound


async def create_project(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    [project] = await ctx.db.table("projects").insert(
        {"org_id": ctx.auth.org_id, "name": input["name"], "created_by": ctx.auth.user_id}
    )
    # Sent to the org's sockets on every instance once this run commits; never if it fails.
    ctx.channel(f"org:{ctx.auth.org_id}:projects").publish("project.created", {"project": project})
    return {"project": project}


async def list_projects(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"projects": await ctx.db.table("projects").order("created_at", desc=True).limit(100)}


async def get_project(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    project = await ctx.db.table("projects").eq("id", input["id"]).single()
    if project is None:
        raise NotFound(f"no project {input['id']}")
    return {"project": project}


async def report(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"projects": await ctx.db.table("projects").count()}
