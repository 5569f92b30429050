"""Users CRUD: the handlers named by actions/users.yaml."""

from __future__ import annotations

from typing import Any

from actions_server import Context, NotFound

# Every column but password_hash: hashes never leave the database.
USER_COLUMNS = ("id", "email", "name", "created_at", "updated_at")


async def create_user(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # A duplicate email violates users_email_key; the framework answers 409.
    [user] = await (
        ctx.db.table("users")
        .insert({"email": input["email"].lower(), "name": input["name"]})
        .returning(*USER_COLUMNS)
    )
    ctx.logger.info("user created", user_id=str(user["id"]))
    ctx.event.emit(
        "user.created", {"user_id": str(user["id"]), "email": user["email"], "name": user["name"]}
    )
    return {"user": user}


async def get_user(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    user = await ctx.db.table("users").select(*USER_COLUMNS).eq("id", input["id"]).single()
    if user is None:
        raise NotFound(f"no user with id {input['id']}")
    return {"user": user}


async def update_user(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    changes = {k: v for k, v in input.items() if k in ("email", "name")}
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    rows = await (
        ctx.db.table("users")
        .eq("id", input["id"])
        .update({**changes, "updated_at": "now"})
        .returning(*USER_COLUMNS)
    )
    if not rows:
        raise NotFound(f"no user with id {input['id']}")
    return {"user": rows[0]}


async def delete_user(input: dict[str, Any], ctx: Context) -> None:
    rows = await ctx.db.table("users").eq("id", input["id"]).delete().returning("id")
    if not rows:
        raise NotFound(f"no user with id {input['id']}")


async def list_users(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    users = ctx.db.table("users")
    page = (
        users.select(*USER_COLUMNS)
        .order("created_at", desc=True)
        .order("id")
        .limit(input["limit"])
        .offset(input["offset"])
    )
    return {
        "users": await page,
        "total": await users.count(),
        "limit": input["limit"],
        "offset": input["offset"],
    }
