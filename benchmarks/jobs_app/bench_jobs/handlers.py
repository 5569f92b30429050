"""The benchmark's job: nothing at all, so the queue's own cost is what is measured."""

from typing import Any


async def noop(input: dict[str, Any], ctx: Any) -> None:
    return None
