"""What a run can use besides the database: the KV store (and, later, storage
and mail), built once per process from the config and closed with it."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config
from .db.pool import Database
from .kv import KV
from .kv.postgres import pool_kv, run_kv
from .kv.redis import RedisKV

if TYPE_CHECKING:
    from .db.session import DbSession


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    redis_kv: RedisKV | None  # None: KV lives in PostgreSQL
    detached_kv: KV  # outside any run's transaction (rate limits)

    def kv_for(self, session: DbSession) -> KV:
        """`ctx.kv`: in PostgreSQL, on the run's connection, so it commits with the run."""
        if self.redis_kv is not None:
            return self.redis_kv
        return run_kv(session.connection)


async def open_services(config: Config, database: Database, stack: AsyncExitStack) -> Services:
    redis_kv = None
    if config.kv.backend == "redis":
        from redis.asyncio import Redis

        assert config.kv.url is not None  # the config's checks require it
        client = Redis.from_url(config.kv.url)
        stack.push_async_callback(client.aclose)
        redis_kv = RedisKV(
            client, config.kv.prefix if config.kv.prefix is not None else f"{config.app}:"
        )
    return Services(redis_kv=redis_kv, detached_kv=redis_kv or pool_kv(database))
