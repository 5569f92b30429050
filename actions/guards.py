"""Custom guards of the example app (named in manifests as `guard: actions.guards:…`)."""

from __future__ import annotations

from typing import Any

from actions_server import Context, Forbidden


async def self_or_admin(ctx: Context, input: dict[str, Any]) -> None:
    """A user may read and change their own record; `users:update` may change anyone's."""
    if ctx.auth.user_id == input.get("id") or ctx.auth.has_permission("users:update"):
        return
    raise Forbidden("only the user themself or an admin (users:update) may do this")
