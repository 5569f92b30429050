"""The benchmark's job: nothing at all, so the queue's own cost is what is measured."""

from typing import Any


async def noop(input: dict[str, Any], ctx: Any) -> None:
    return None


async def push_many(input: dict[str, Any], ctx: Any) -> dict[str, int]:
    ids = await ctx.queue.push_many("noop", ({"n": n} for n in range(input["count"])))
    return {"queued": len(ids)}


async def emit_many(input: dict[str, Any], ctx: Any) -> dict[str, int]:
    ctx.event.emit_many("bulk.happened", ({"n": n} for n in range(input["count"])))
    return {"emitted": input["count"]}
