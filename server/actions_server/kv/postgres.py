"""The PostgreSQL KV backend: `actions_server.kv`, one row per key.

`RunKV` is `ctx.kv` on this backend: it works on the run's own connection, so
its writes commit or roll back with the run. `PoolKV` takes a connection per
call, outside any run (the rate-limit guard counts with it, so that a request
that fails still counts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from ..db.pool import Connection, Database
from ..db.sqlfile import load_queries
from . import KVError, check_key, check_ttl

Q = load_queries(Path(__file__).with_name("queries.sql"))

ConnectionSource = Callable[[], AbstractAsyncContextManager[Connection]]


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching keys that start with `prefix` (its % and _ literal)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class PostgresKV:
    """KV on `actions_server.kv`, through connections from `source`."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    async def _rows(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        async with self._source() as conn:
            cursor = await conn.execute(Q[name], params)
            return await cursor.fetchall() if cursor.description is not None else []

    async def get(self, key: str, default: Any = None) -> Any:
        rows = await self._rows("get", {"key": check_key(key)})
        return rows[0]["value"] if rows else default

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self._rows(
            "set", {"key": check_key(key), "value": Jsonb(value), "ttl": check_ttl(ttl)}
        )

    async def delete(self, key: str) -> bool:
        rows = await self._rows("delete", {"key": check_key(key)})
        return bool(rows and rows[0]["live"])

    async def exists(self, key: str) -> bool:
        return bool(await self._rows("get", {"key": check_key(key)}))

    async def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        if isinstance(by, bool) or not isinstance(by, int):
            raise KVError(f"incr() adds a whole number, not {by!r}")
        rows = await self._rows("incr", {"key": check_key(key), "by": by, "ttl": check_ttl(ttl)})
        value = rows[0]["value"]
        if value is None:
            raise KVError(f"incr() on {key!r}, which does not hold a whole number")
        return int(value)

    async def ttl(self, key: str) -> float | None:
        rows = await self._rows("ttl", {"key": check_key(key)})
        if not rows or rows[0]["forever"]:
            return None
        return max(0.0, float(rows[0]["seconds"]))

    async def keys(self, prefix: str = "", limit: int = 1000) -> list[str]:
        rows = await self._rows("keys", {"pattern": like_prefix(prefix), "limit": limit})
        return [row["key"] for row in rows]

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        wanted = [check_key(k) for k in keys]
        rows = await self._rows("get_many", {"keys": wanted})
        return {row["key"]: row["value"] for row in rows}

    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        if not items:
            return
        keys = [check_key(k) for k in items]
        values = [Jsonb(v) for v in items.values()]
        await self._rows("set_many", {"keys": keys, "values": values, "ttl": check_ttl(ttl)})


def run_kv(connection: Callable[[], Awaitable[Connection]]) -> PostgresKV:
    """KV on the run's connection (opened on first use, like ctx.db)."""

    @asynccontextmanager
    async def source() -> AsyncIterator[Connection]:
        yield await connection()

    return PostgresKV(source)


def pool_kv(database: Database) -> PostgresKV:
    """KV on short connections of its own (the detached pool), outside any run."""

    def source() -> AbstractAsyncContextManager[Connection]:
        return database.detached()

    return PostgresKV(source)
