"""Organizations and memberships (the handlers named by actions/orgs.yaml)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from actions_server import Conflict, Context, NotFound

FEATURES_TTL_SECONDS = 300


def features_key(org_id: str) -> str:
    """Where an org's plan features are cached in ctx.kv (dropped on a plan change)."""
    return f"orgs:{org_id}:features"


async def create_org(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    # One transaction: the org, its first admin and its subscription, or none of them.
    [org] = await ctx.db.table("organizations").insert({"name": input["name"]})
    await ctx.db.table("org_memberships").insert(
        {"org_id": org["id"], "user_id": ctx.auth.user_id, "role": "org:admin"}
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
    key = features_key(str(ctx.auth.org_id))
    cached = await ctx.kv.get(key)
    if cached is not None:
        return dict(cached)
    rows = await ctx.db.raw(
        "SELECT s.plan_key, f.feature_key FROM subscriptions s "
        "LEFT JOIN plan_features f ON f.plan_key = s.plan_key "
        "WHERE s.org_id = %s AND s.status IN ('active', 'trialing') ORDER BY f.feature_key",
        ctx.auth.org_id,
    )
    features = {
        "plan": rows[0]["plan_key"] if rows else None,
        "features": [r["feature_key"] for r in rows if r["feature_key"] is not None],
    }
    await ctx.kv.set(key, features, ttl=FEATURES_TTL_SECONDS)
    return features


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def invite_member(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    # An open invitation for the same address already exists: the unique index answers 409.
    [invitation] = await (
        ctx.db.table("invitations")
        .insert(
            {
                "org_id": ctx.auth.org_id,
                "email": input["email"].lower(),
                "role": input["role"],
                "token_sha256": _token_hash(token),
                "invited_by": ctx.auth.user_id,
            }
        )
        .returning("id", "email", "role", "expires_at")
    )
    # The mail is rendered and sent by a worker; the push commits with the invitation.
    await ctx.queue.push(
        "sendInvitationEmail", {"invitation_id": str(invitation["id"]), "token": token}
    )
    return {"invitation": invitation}


async def send_invitation_email(input: dict[str, Any], ctx: Context) -> None:
    [invitation] = await ctx.db.raw(
        "SELECT i.email, i.role, o.name AS org, coalesce(u.name, u.email, 'Someone') AS inviter "
        "FROM invitations i JOIN organizations o ON o.id = i.org_id "
        "LEFT JOIN users u ON u.id = i.invited_by WHERE i.id = %s",
        input["invitation_id"],
    ) or [None]
    if invitation is None:  # the org was deleted meanwhile
        ctx.logger.info("invitation gone; nothing to send", invitation_id=input["invitation_id"])
        return
    await ctx.mail.send(
        invitation["email"],
        template="invitation",
        data={
            "org": invitation["org"],
            "inviter": invitation["inviter"],
            "role": invitation["role"].removeprefix("org:").replace("_", " "),
            "token": input["token"],
        },
    )


async def accept_invitation(input: dict[str, Any], ctx: Context) -> dict[str, Any]:
    user = await ctx.db.table("users").select("email").eq("id", ctx.auth.user_id).single()
    rows = await ctx.db.raw(
        "UPDATE invitations SET accepted_at = now() "
        "WHERE token_sha256 = %s AND accepted_at IS NULL AND expires_at > now() "
        "AND email = %s RETURNING org_id, role",
        _token_hash(input["token"]),
        user["email"] if user else None,
    )
    if not rows:
        # Unknown, used, expired, or for another address: one answer for all.
        raise NotFound("no open invitation for you with this code")
    [accepted] = rows
    joined = await ctx.db.raw(
        "INSERT INTO org_memberships (org_id, user_id, role) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING org_id",
        accepted["org_id"],
        ctx.auth.user_id,
        accepted["role"],
    )
    if not joined:  # raising rolls the acceptance back: the invitation stays open
        raise Conflict("you are already a member of this org")
    return {"org_id": accepted["org_id"], "role": accepted["role"]}
