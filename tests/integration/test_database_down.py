"""While PostgreSQL is down requests get a quick 503; when it is back they succeed again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apps import serving, write_app
from support.postgres import ThrowawayPostgres

pytestmark = pytest.mark.integration

MANIFEST = """
module: ping
actions:
  - name: ping.db
    handler: PKG.handlers:ping
    triggers: [{api: GET /ping}]
  - name: ping.pure
    handler: PKG.handlers:pure
    triggers: [{api: GET /pure}]
"""

HANDLERS = """
async def ping(input, ctx):
    [row] = await ctx.db.raw("SELECT 1 AS one")
    return row

async def pure(input, ctx):
    return {"ok": True}
"""


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres(tmp_path / "own-pg")
    yield server
    server.close()


@pytest.mark.timeout(120)
async def test_database_down_is_503_then_recovers(
    tmp_path: Path, postgres: ThrowawayPostgres
) -> None:
    config, _ = write_app(
        tmp_path / "app",
        {"ping.yaml": MANIFEST},
        HANDLERS,
        config="app: ping\ndatabase: {pool: {min: 2, max: 4, acquire_timeout_seconds: 3}}\n",
    )
    async with serving(config, postgres.dsn) as client:
        status, body, _ = await client.get("/ping")
        assert (status, body) == (200, {"one": 1})

        await asyncio.to_thread(postgres.stop)
        for _ in range(3):
            started = time.monotonic()
            status, body, response = await client.get("/ping")
            elapsed = time.monotonic() - started
            assert status == 503, body
            assert body["error"]["code"] == "database_unavailable"
            assert body["error"]["trace_id"] == response.headers["x-trace-id"]
            # Bounded by the acquire timeout, never a hang.
            assert elapsed < 4, elapsed
        status, _, _ = await client.get("/readyz")
        assert status == 503
        status, body, _ = await client.get("/pure")
        assert (status, body) == (200, {"ok": True})

        await asyncio.to_thread(postgres.start)
        deadline = time.monotonic() + 20
        while True:
            status, body, _ = await client.get("/ping")
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert (status, body) == (200, {"one": 1})
        status, _, _ = await client.get("/readyz")
        assert status == 200
