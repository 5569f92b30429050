"""Billing: a plan change emits `subscription.updated`; a subscriber records it."""

from __future__ import annotations

from typing import Any

from actions.orgs import features_key
from actions_server import Context


async def update_subscription(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    change = {"org_id": ctx.auth.org_id, "plan_key": input["plan_key"], "status": input["status"]}
    [subscription] = await ctx.db.table("subscriptions").upsert(
        {**change, "updated_at": "now"}, on_conflict="org_id"
    )
    ctx.event.emit("subscription.updated", change)
    return {"subscription": subscription}


async def on_subscription_updated(input: dict[str, Any], ctx: Context) -> None:
    # orgs.getFeatures caches for 5 minutes; a plan change must show at once.
    await ctx.kv.delete(features_key(input["org_id"]))
    await ctx.db.table("subscription_events").insert(
        {"org_id": input["org_id"], "plan_key": input["plan_key"], "status": input["status"]}
    )
