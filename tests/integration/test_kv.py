"""The KV contract, run over every backend: PostgreSQL and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from actions_server.db.pool import Database
from actions_server.kv import KV, KVError
from actions_server.kv.postgres import pool_kv
from actions_server.kv.redis import RedisKV
from support.apps import Client, serving, write_app
from support.polling import query

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "redis"])
async def kv(request: pytest.FixtureRequest, database: str) -> AsyncIterator[KV]:
    if request.param == "postgres":
        db = Database(database, min_size=1, max_size=2)
        await db.open()
        try:
            yield pool_kv(db)
        finally:
            await db.close()
        return
    from redis.asyncio import Redis

    client = Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    try:
        yield RedisKV(client, prefix)
    finally:
        async for name in client.scan_iter(match=prefix + "*"):
            await client.delete(name)
        await client.aclose()


TimePasses = Callable[[float], Awaitable[None]]


@pytest.fixture
def time_passes(kv: KV, database: str) -> TimePasses:
    """`await time_passes(s)`: to the store, `s` seconds pass (every expiry moves `s` earlier).

    Expiry is decided by the store's own clock (PostgreSQL's now(), Redis's), never
    by Python's, so a test moves the expiries instead of sleeping until they pass.
    """
    if isinstance(kv, RedisKV):
        redis = kv

        async def on_redis(seconds: float) -> None:
            async for name in redis.client.scan_iter(match=redis.prefix + "*"):
                left = await redis.client.pttl(name)
                if left >= 0:  # -1: no expiry; a timeout <= 0 deletes the key, as expiry would
                    await redis.client.pexpire(name, left - round(seconds * 1000))

        return on_redis

    async def on_postgres(seconds: float) -> None:
        query(
            database,
            "UPDATE actions_server.kv SET expires_at = expires_at - make_interval(secs => %s)"
            " WHERE expires_at IS NOT NULL",
            seconds,
        )

    return on_postgres


VALUES = [{"a": [1, 2, {"b": None}]}, [1, "two"], "text", 42, 2.5, True, None, ""]


@pytest.mark.parametrize("value", VALUES)
async def test_values_round_trip_as_json(kv: KV, value: object) -> None:
    await kv.set("k", value)
    assert await kv.get("k", default="missing") == value
    assert await kv.exists("k")


async def test_missing_keys(kv: KV) -> None:
    assert await kv.get("nope") is None
    assert await kv.get("nope", default=0) == 0
    assert not await kv.exists("nope")
    assert not await kv.delete("nope")
    assert await kv.ttl("nope") is None


async def test_delete(kv: KV) -> None:
    await kv.set("k", 1)
    assert await kv.delete("k")
    assert not await kv.exists("k")


async def test_ttl_expires_keys(kv: KV, time_passes: TimePasses) -> None:
    await kv.set("short", "x", ttl=30)
    await kv.set("forever", "y")
    left = await kv.ttl("short")
    assert left is not None
    assert 20 < left <= 30
    assert await kv.ttl("forever") is None
    await time_passes(31)
    assert await kv.get("short") is None
    assert not await kv.exists("short")
    assert await kv.keys("short") == []
    assert await kv.ttl("short") is None
    assert await kv.get("forever") == "y"


async def test_set_replaces_value_and_ttl(kv: KV, time_passes: TimePasses) -> None:
    await kv.set("k", 1, ttl=30)
    await kv.set("k", 2)
    await time_passes(31)
    assert await kv.get("k") == 2
    assert await kv.ttl("k") is None


async def test_incr_counts_and_sets_the_ttl_on_creation_only(
    kv: KV, time_passes: TimePasses
) -> None:
    assert await kv.incr("n", ttl=60) == 1
    await time_passes(30)
    assert await kv.incr("n", by=5, ttl=1000) == 6  # the first ttl stays
    left = await kv.ttl("n")
    assert left is not None
    assert 20 < left <= 30
    await time_passes(31)
    assert await kv.incr("n") == 1  # expired: starts again, without a ttl this time
    assert await kv.ttl("n") is None
    assert await kv.incr("n", by=-3) == -2
    await kv.set("m", 10)
    assert await kv.incr("m") == 11
    assert await kv.get("m") == 11


async def test_incr_with_a_ttl_leaves_a_persistent_key_persistent(kv: KV) -> None:
    await kv.set("counter", 5)  # no expiry
    assert await kv.incr("counter", ttl=60) == 6
    assert await kv.ttl("counter") is None
    assert await kv.incr("counter", by=2, ttl=60) == 8
    assert await kv.ttl("counter") is None


async def test_incr_keeps_the_expiry_a_set_gave(kv: KV, time_passes: TimePasses) -> None:
    await kv.set("counter", 5, ttl=60)
    await time_passes(30)
    assert await kv.incr("counter", ttl=1000) == 6
    left = await kv.ttl("counter")
    assert left is not None
    assert 20 < left <= 30


async def test_incr_on_an_expired_key_starts_again_with_the_new_ttl(
    kv: KV, time_passes: TimePasses
) -> None:
    await kv.set("counter", "not a number", ttl=10)
    await time_passes(11)
    assert await kv.incr("counter", by=3, ttl=60) == 3  # the expired text is gone
    left = await kv.ttl("counter")
    assert left is not None
    assert 50 < left <= 60


async def test_incr_refuses_what_is_not_a_whole_number(kv: KV) -> None:
    await kv.set("text", "abc")
    await kv.set("numeric text", "12")
    await kv.set("half", 1.5)
    await kv.set("list", [1])
    for key in ("text", "numeric text", "half", "list"):
        with pytest.raises(KVError, match="does not hold a whole number"):
            await kv.incr(key, ttl=60)
        assert await kv.ttl(key) is None  # refused: nothing changed, no expiry added
    assert await kv.get_many(["text", "numeric text", "half", "list"]) == {
        "text": "abc",
        "numeric text": "12",
        "half": 1.5,
        "list": [1],
    }
    with pytest.raises(KVError, match="adds a whole number"):
        await kv.incr("text", by=1.5)  # type: ignore[arg-type]


async def test_incr_is_atomic_under_50_concurrent_tasks(kv: KV) -> None:
    results = await asyncio.gather(*(kv.incr("hits") for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await kv.get("hits") == 50


async def test_keys_by_prefix(kv: KV) -> None:
    for key in ("user:1", "user:2", "user_3", "org:1", "us%r:9"):
        await kv.set(key, key)
    assert sorted(await kv.keys("user:")) == ["user:1", "user:2"]
    assert sorted(await kv.keys("us")) == ["us%r:9", "user:1", "user:2", "user_3"]
    assert await kv.keys("us%") == ["us%r:9"]  # % and _ are literal
    assert len(await kv.keys("", limit=2)) == 2


async def test_get_many_and_set_many(kv: KV) -> None:
    await kv.set_many({"a": 1, "b": {"x": 2}}, ttl=10)
    assert await kv.get_many(["a", "b", "c"]) == {"a": 1, "b": {"x": 2}}
    left = await kv.ttl("a")
    assert left is not None
    assert left > 5
    assert await kv.get_many([]) == {}


@pytest.mark.parametrize("key", ["", "x" * 513, None, 3])
async def test_bad_keys_are_refused(kv: KV, key: object) -> None:
    with pytest.raises(KVError):
        await kv.set(key, 1)  # type: ignore[arg-type]


MANIFEST = """
module: k
actions:
  - name: k.setThenFail
    handler: PKG.handlers:set_then_fail
    triggers: [{api: POST /fail}]
  - name: k.set
    handler: PKG.handlers:set_value
    triggers: [{api: POST /set}]
"""

HANDLERS = """
from actions_server import BadRequest

async def set_then_fail(input, ctx):
    await ctx.kv.set("rolled-back", True)
    await ctx.kv.incr("counter")
    raise BadRequest("no")

async def set_value(input, ctx):
    await ctx.kv.set("kept", {"at": "commit"}, ttl=60)
    return {"seen_in_run": await ctx.kv.get("kept")}
"""


@pytest.fixture
async def app(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"k.yaml": MANIFEST}, HANDLERS)
    async with serving(config, database) as client:
        yield client


def kv_rows(dsn: str) -> list[tuple[str, object]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT key, value FROM actions_server.kv ORDER BY key").fetchall()


async def test_postgres_kv_writes_roll_back_with_the_run(app: Client, database: str) -> None:
    status, _, _ = await app.post("/fail")
    assert status == 400
    assert kv_rows(database) == []
    status, body, _ = await app.post("/set")
    assert (status, body) == (200, {"seen_in_run": {"at": "commit"}})
    assert kv_rows(database) == [("kept", {"at": "commit"})]
