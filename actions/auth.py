"""Password sign-up and login (the handlers named by actions/auth.yaml)."""

from __future__ import annotations

from typing import Any

from actions.users import USER_COLUMNS
from actions_server import ActionError, Context, NotFound

TOKEN_TTL_SECONDS = 3600
# Checked when the email is unknown, so that both failures take the same time.
_NOBODYS_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$0mXWfG1TnqUOo/FNyf8qEw"
    "$uYZkOoO1IGqmJQS1Sdi83w4GqcHhACR7++WXJo1obBw"
)


def _session(ctx: Context, user: dict[str, Any]) -> dict[str, Any]:
    # The session cookie for the browser (auth.session in config.yaml), the same
    # token in the body for API clients.
    token = ctx.auth.login(str(user["id"]), ttl_seconds=TOKEN_TTL_SECONDS)
    return {"user": user, "token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECONDS}


async def signup(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    hashed = await ctx.auth.hash_password(input["password"])
    [user] = await (
        ctx.db.table("users")
        .insert({"email": input["email"].lower(), "name": input["name"], "password_hash": hashed})
        .returning(*USER_COLUMNS)
    )
    ctx.logger.info("signed up", user_id=str(user["id"]))
    ctx.event.emit(
        "user.created", {"user_id": str(user["id"]), "email": user["email"], "name": user["name"]}
    )
    return _session(ctx, user)


async def login(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    row = await ctx.db.table("users").eq("email", input["email"].lower()).single()
    # The same answer, in the same time, for an unknown email and a wrong password.
    hashed = row["password_hash"] if row and row["password_hash"] else _NOBODYS_HASH
    valid = await ctx.auth.verify_password(input["password"], hashed)
    if row is None or hashed is _NOBODYS_HASH or not valid:
        raise ActionError(401, "invalid_credentials", "wrong email or password")
    return _session(ctx, {column: row[column] for column in USER_COLUMNS})


async def logout(input: dict[str, Any], ctx: Context) -> None:
    # Revokes the token (every instance refuses it within a second) and clears the cookie.
    await ctx.auth.logout()


async def me(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    user = await ctx.db.table("users").select(*USER_COLUMNS).eq("id", ctx.auth.user_id).single()
    if user is None:
        raise NotFound("the signed-in user no longer exists")
    orgs = await ctx.db.raw(
        "SELECT o.id, o.name, m.role FROM org_memberships m "
        "JOIN organizations o ON o.id = m.org_id WHERE m.user_id = %s ORDER BY o.name",
        ctx.auth.user_id,
    )
    return {"user": user, "orgs": orgs}
