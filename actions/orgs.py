"""Organizations and memberships (the handlers named by actions/orgs.yaml)."""

from __future__ import annotations

from typing import Any

from actions_server import Context, NotFound


async def create_org(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # One transaction: the org, its first admin and its subscription, or none of them.
    [org] = await ctx.db.table("organizations").insert({"name": input["name"]})
    await ctx.db.table("org_memberships").insert(
        {"org_id": org["id"], "user_id": ctx.auth.user_id, "role": "admin"}
    )
    await ctx.db.table("subscriptions").insert(
        {"org_id": org["id"], "plan_key": "free", "status": "active"}
    )
    ctx.logger.info("org created", org_id=str(org["id"]))
    return {"org": org}


async def list_members(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    members = await ctx.db.raw(
        "SELECT u.id AS user_id, u.email, u.name, m.role FROM org_memberships m "
        "JOIN users u ON u.id = m.user_id WHERE m.org_id = %s ORDER BY m.created_at, u.email",
        ctx.auth.org_id,
    )
    return {"members": members}


async def add_member(input: dict[str, Any], ctx: Context) -> None:
    user = await ctx.db.table("users").select("id").eq("email", input["email"].lower()).single()
    if user is None:
        raise NotFound(f"no user with email {input['email']}")
    # Already a member: the primary key answers 409.
    await (
        ctx.db.table("org_memberships")
        .insert({"org_id": ctx.auth.org_id, "user_id": user["id"], "role": input["role"]})
        .returning()
    )


async def get_features(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    rows = await ctx.db.raw(
        "SELECT s.plan_key, f.feature_key FROM subscriptions s "
        "LEFT JOIN plan_features f ON f.plan_key = s.plan_key "
        "WHERE s.org_id = %s AND s.status IN ('active', 'trialing') ORDER BY f.feature_key",
        ctx.auth.org_id,
    )
    return {
        "plan": rows[0]["plan_key"] if rows else None,
        "features": [r["feature_key"] for r in rows if r["feature_key"] is not None],
    }
