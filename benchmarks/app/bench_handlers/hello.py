"""Handlers of the benchmark app: the same work as the raw aiohttp baseline."""

from typing import Any

HELLO = {"message": "Hello, world!"}


async def hello(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return HELLO


async def echo(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return input


async def me(input: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"user_id": ctx.auth.user_id}
