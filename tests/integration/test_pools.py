"""Each kind of work has its own connections: jobs never take a request's, and the
worker's claims and heartbeats never wait behind rate-limit counters or scrapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MANIFEST = """
module: p
actions:
  - name: p.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: p.count
    handler: PKG.handlers:count
    triggers: [{api: GET /count}]
  - name: p.sleep
    handler: PKG.handlers:sleep
    retry: {attempts: 1}
    triggers: [{event: job.sleep}]
"""

HANDLERS = """
async def push(input, ctx):
    for n in range(input["jobs"]):
        await ctx.queue.push("sleep", {"seconds": input["seconds"], "n": n})
    return {"ok": True}

async def count(input, ctx):
    [row] = await ctx.db.raw("SELECT count(*)::int AS n FROM actions_server.jobs")
    return row

async def sleep(input, ctx):
    await ctx.db.raw("SELECT pg_sleep(%s)", input["seconds"])
"""

# The run pool is tiny next to the queue's concurrency: the defaults' old trap.
CONFIG = """
app: p
database: {pool: {min: 1, max: 2, acquire_timeout_seconds: 1}}
queue: {concurrency: 8}
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"p.yaml": MANIFEST}, HANDLERS, config=CONFIG)
    async with serving(config, empty_database) as client:
        yield client


def jobs(dsn: str) -> list[dict]:
    return query(dsn, "SELECT status, attempts, last_error FROM actions_server.jobs ORDER BY id")


async def test_busy_jobs_and_requests_do_not_take_each_others_connections(
    app: Client, empty_database: str
) -> None:
    assert (await app.post("/push", json={"jobs": 8, "seconds": 2}))[0] == 200
    async with working(app):
        # Eight jobs hold a connection each for 2 s, more than the run pool has.
        await eventually(lambda: sum(j["status"] == "running" for j in jobs(empty_database)) == 8)
        statuses = [(await app.get("/count"))[0] for _ in range(5)]
        assert statuses == [200] * 5  # requests are not waiting behind the jobs
        done = await eventually(
            lambda: all(j["status"] == "done" for j in jobs(empty_database)), seconds=20
        )
    assert done, jobs(empty_database)
    assert [(j["attempts"], j["last_error"]) for j in jobs(empty_database)] == [(1, None)] * 8


async def test_the_worker_claims_while_every_detached_connection_is_taken(
    app: Client, empty_database: str
) -> None:
    database = app.runtime.database
    async with AsyncExitStack() as held:
        # Rate-limit counters and /metrics scrapes use these; here they are all busy.
        for _ in range(database.detached_pool.max_size):
            await held.enter_async_context(database.detached())
        assert (await app.post("/push", json={"jobs": 3, "seconds": 0}))[0] == 200
        async with working(app):
            done = await eventually(
                lambda: [j["status"] for j in jobs(empty_database)] == ["done"] * 3
            )
        assert done, jobs(empty_database)
