"""A demo org to try the example app with at once: Demo (on the pro plan), with an
admin and a member who can log in.

    admin@demo.example / demo password   (org admin)
    member@demo.example / demo password  (org member)
"""

from __future__ import annotations

from typing import Any

PASSWORD = "demo password"
PEOPLE = [
    ("admin@demo.example", "Demo Admin", "org:admin"),
    ("member@demo.example", "Demo Member", "org:member"),
]


async def seed(ctx: Any) -> None:
    if await ctx.db.table("users").eq("email", PEOPLE[0][0]).single() is not None:
        ctx.logger.info("the demo org is there already")
        return  # run again (seed --fresh): nothing to add
    [org] = await ctx.db.table("organizations").insert({"name": "Demo"})
    await ctx.db.table("subscriptions").insert(
        {"org_id": org["id"], "plan_key": "pro", "status": "active"}
    )
    hashed = await ctx.hash_password(PASSWORD)
    for email, name, role in PEOPLE:
        [user] = await ctx.db.table("users").insert(
            {"email": email, "name": name, "password_hash": hashed}
        )
        await ctx.db.table("org_memberships").insert(
            {"org_id": org["id"], "user_id": user["id"], "role": role}
        )
    ctx.logger.info("demo org %s: %s", org["id"], ", ".join(email for email, _, _ in PEOPLE))
