"""The same two statements as benchmarks/raw_db.py, through ctx.db."""

from actions_server import NotFound


async def hello(input, ctx):
    return {"ok": True}


async def create(input, ctx):
    [item] = await ctx.db.raw(
        "INSERT INTO items (name) VALUES (%s) RETURNING id, name", input["name"]
    )
    return item


async def get(input, ctx):
    rows = await ctx.db.raw("SELECT id, name FROM items WHERE id = %s", input["id"])
    if not rows:
        raise NotFound("no such item")
    return rows[0]
