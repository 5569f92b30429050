"""The Redis KV backend (redis-py's asyncio client).

Values are stored as their JSON text, so an integer set by `set` can be
incremented by `incr`. Keys carry a prefix (`kv.prefix`, the app's name by
default) so that apps can share a Redis. Listing uses SCAN, never KEYS. Redis
writes happen at once: they cannot join the run's database transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ..jsonutil import dumps
from . import KVError, check_key, check_ttl

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisKV:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def get(self, key: str, default: Any = None) -> Any:
        raw = await self.client.get(self._key(key))
        return default if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        ttl = check_ttl(ttl)
        # One command sets the value and its expiry together.
        await self.client.set(self._key(key), dumps(value), px=_ms(ttl) if ttl else None)

    async def delete(self, key: str) -> bool:
        return bool(await self.client.delete(self._key(key)))

    async def exists(self, key: str) -> bool:
        return bool(await self.client.exists(self._key(key)))

    async def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        if isinstance(by, bool) or not isinstance(by, int):
            raise KVError(f"incr() adds a whole number, not {by!r}")
        ttl = check_ttl(ttl)
        name = self._key(key)
        async with self.client.pipeline(transaction=True) as pipe:
            if ttl:
                # The TTL goes only on a key this call creates: SET NX writes 0 with the
                # expiry when the key is missing (or expired), and does nothing otherwise,
                # so a persistent key stays persistent and a counter keeps its window.
                # (PEXPIRE NX after INCRBY would also give a persistent key an expiry.)
                pipe.set(name, b"0", px=_ms(ttl), nx=True)
            pipe.incrby(name, by)
            try:
                results = await pipe.execute()
            except ResponseError as exc:
                raise KVError(f"incr() on {key!r}, which does not hold a whole number") from exc
        return int(results[-1])

    async def ttl(self, key: str) -> float | None:
        millis = await self.client.pttl(self._key(key))
        return None if millis < 0 else millis / 1000

    async def keys(self, prefix: str = "", limit: int = 1000) -> list[str]:
        pattern = (self.prefix + prefix).translate(_GLOB_SPECIAL) + "*"
        found: list[str] = []
        async for name in self.client.scan_iter(match=pattern, count=1000):
            text = name.decode() if isinstance(name, bytes) else name
            found.append(text[len(self.prefix) :])
            if len(found) >= limit:
                break
        return found

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        wanted = list(keys)
        if not wanted:
            return {}
        raws = await self.client.mget([self._key(k) for k in wanted])
        return {
            k: orjson.loads(raw) for k, raw in zip(wanted, raws, strict=True) if raw is not None
        }

    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        ttl = check_ttl(ttl)
        async with self.client.pipeline(transaction=True) as pipe:
            for key, value in items.items():
                pipe.set(self._key(key), dumps(value), px=_ms(ttl) if ttl else None)
            await pipe.execute()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
