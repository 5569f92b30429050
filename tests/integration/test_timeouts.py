"""Every external wait has a default bound: a run without its own timeout_seconds,
a statement, a Redis command, an S3 request. A peer that accepts connections and
never answers (a black hole) costs a run that bound, never a hang."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from actions_server.config import load_config
from support.apps import Client, serving, working, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MANIFEST = """
module: t
actions:
  - name: t.sleep
    handler: PKG.handlers:sleep
    triggers: [{api: POST /sleep}]
  - name: t.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: t.background
    handler: PKG.handlers:sleep
    retry: {attempts: 2, backoff: fixed, base_seconds: 0.1}
    triggers: [{event: job.background}]
  - name: t.kv
    handler: PKG.handlers:kv
    triggers: [{api: GET /kv}]
  - name: t.storage
    handler: PKG.handlers:storage
    triggers: [{api: GET /storage}]
"""

HANDLERS = """
import asyncio

async def sleep(input, ctx):
    await ctx.db.raw("INSERT INTO marks VALUES ('started')")
    await asyncio.sleep(input["seconds"])
    return {"slept": True}

async def push(input, ctx):
    await ctx.queue.push("background", {"seconds": input["seconds"]})

async def kv(input, ctx):
    return {"value": await ctx.kv.get("k")}

async def storage(input, ctx):
    return {"exists": await ctx.storage.exists("k")}
"""

MIGRATION = "CREATE TABLE marks (what text);"


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def app_config(tmp_path: Path, extra: str) -> Path:
    config, _ = write_app(
        tmp_path,
        {"t.yaml": MANIFEST},
        HANDLERS,
        config=f"app: t\n{extra}",
        migrations={"001.sql": MIGRATION},
    )
    return config


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    extra = "server: {action_timeout_seconds: 1}\nqueue: {action_timeout_seconds: 1}\n"
    async with serving(app_config(tmp_path, extra), empty_database) as client:
        yield client


async def test_an_http_run_past_the_default_limit_is_504_and_rolled_back(
    app: Client, empty_database: str
) -> None:
    started = time.monotonic()
    status, body, _ = await app.post("/sleep", json={"seconds": 30})
    assert (status, body["error"]["code"]) == (504, "timeout")
    assert "the default limit" in body["error"]["message"]
    assert time.monotonic() - started < 10  # 1 s, checked every 0.5 s; never the 30 s
    assert query(empty_database, "SELECT * FROM marks") == []
    assert (await app.post("/sleep", json={"seconds": 0}))[0] == 200  # a quick one is fine


async def test_a_job_past_the_default_limit_fails_and_is_retried(
    app: Client, empty_database: str
) -> None:
    assert (await app.post("/push", json={"seconds": 30}))[0] == 204
    async with working(app):
        dead = await eventually(
            lambda: query(
                empty_database,
                "SELECT attempts, last_error FROM actions_server.jobs WHERE status = 'dead'",
            ),
            seconds=30,
        )
    assert dead, query(empty_database, "SELECT * FROM actions_server.jobs")
    assert dead[0]["attempts"] == 2
    assert dead[0]["last_error"]["code"] == "timeout"


def test_the_defaults_bound_every_wait(tmp_path: Path) -> None:
    config = load_config(app_config(tmp_path, ""), env={})
    assert config.server.action_timeout_seconds == 60
    assert config.queue.action_timeout_seconds == 900
    assert config.database.statement_timeout_seconds == 30
    assert config.kv.timeout_seconds == 5
    assert config.storage.timeout_seconds == 30


async def test_a_black_holed_redis_costs_a_run_its_timeout(
    tmp_path: Path, empty_database: str, black_hole: int
) -> None:
    extra = (
        f"kv: {{backend: redis, url: 'redis://127.0.0.1:{black_hole}/0', timeout_seconds: 0.5}}\n"
    )
    async with serving(app_config(tmp_path, extra), empty_database) as client:
        started = time.monotonic()
        status, body, _ = await client.get("/kv")
        assert (status, body["error"]["code"]) == (503, "backend_unavailable"), body
        assert time.monotonic() - started < 5


async def test_a_black_holed_s3_costs_a_run_its_timeout(
    tmp_path: Path, empty_database: str, black_hole: int
) -> None:
    extra = (
        f"storage: {{backend: s3, endpoint: '127.0.0.1:{black_hole}', bucket: files, access_key: a,"
        " secret_key: s, secure: false, create_bucket: false, timeout_seconds: 0.5}\n"
    )
    async with serving(app_config(tmp_path, extra), empty_database) as client:
        started = time.monotonic()
        status, body, _ = await asyncio.wait_for(client.get("/storage"), 30)
        assert (status, body["error"]["code"]) == (503, "backend_unavailable"), body
        assert time.monotonic() - started < 10
