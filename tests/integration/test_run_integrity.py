"""A run commits whole or not at all, and reports what really happened."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from support.apps import Client, serving, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MIGRATION = "CREATE TABLE t (v text PRIMARY KEY);"

MANIFEST = """
module: t
actions:
  - {name: t.gather, handler: PKG.handlers:gather, triggers: [{api: POST /gather}]}
  - {name: t.swallow, handler: PKG.handlers:swallow, triggers: [{api: POST /swallow}]}
  - {name: t.weird, handler: PKG.handlers:weird, triggers: [{api: POST /weird}]}
  - {name: t.nowait, handler: PKG.handlers:nowait, triggers: [{api: POST /nowait}]}
  - {name: t.count, handler: PKG.handlers:count, triggers: [{api: GET /count}]}
  - name: t.slow
    handler: PKG.handlers:slow
    timeout_seconds: 0.5
    triggers: [{api: POST /slow}]
  - name: t.hold
    handler: PKG.handlers:hold
    triggers: [{api: POST /hold}]
"""

HANDLERS = """
import asyncio

async def gather(input, ctx):
    await asyncio.gather(*(ctx.db.table("t").insert({"v": f"g{i}"}) for i in range(5)))
    return {"ok": True}

async def swallow(input, ctx):
    await ctx.db.table("t").insert({"v": "s1"})
    try:
        await ctx.db.table("t").insert({"v": "s1"})
    except Exception:
        pass
    return {"ok": True}

class Weird:
    pass

async def weird(input, ctx):
    await ctx.db.table("t").insert({"v": "w1"})
    return {"w": Weird()}

async def nowait(input, ctx):
    return await ctx.db.raw("SELECT v FROM t WHERE v = 'locked' FOR UPDATE NOWAIT")

async def count(input, ctx):
    return {"n": await ctx.db.table("t").count()}

async def slow(input, ctx):
    await ctx.db.table("t").insert({"v": "slow"})
    await asyncio.sleep(3600)  # only the action's timeout_seconds can end it
    return {"ok": True}

async def hold(input, ctx):
    # Holds its pooled connection until the test releases the advisory lock.
    await ctx.db.raw("SELECT pg_advisory_xact_lock_shared(7)")
    return {"ok": True}
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"t.yaml": MANIFEST},
        HANDLERS,
        migrations={"001.sql": MIGRATION},
        config="app: t\nserver: {body_timeout_seconds: 1}\n"
        "database: {pool: {min: 1, max: 2, acquire_timeout_seconds: 0.5}}\n",
    )
    async with serving(config, empty_database) as client:
        yield client


def waiting_on_the_gate(dsn: str) -> int:
    """How many sessions wait for the advisory lock that /hold takes."""
    found = query(
        dsn,
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND objid = 7",
    )
    return int(found[0]["n"])


def rows(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]


async def test_concurrent_queries_share_the_runs_transaction(
    app: Client, empty_database: str
) -> None:
    for _ in range(3):  # a leaked connection would exhaust the pool of 2
        await app.post("/gather")
        with psycopg.connect(empty_database, autocommit=True) as conn:
            conn.execute("DELETE FROM t")
    status, body, _ = await app.post("/gather")
    assert (status, body) == (200, {"ok": True})
    assert rows(empty_database) == ["g0", "g1", "g2", "g3", "g4"]


async def test_a_swallowed_database_error_is_not_reported_as_success(
    app: Client, empty_database: str
) -> None:
    status, body, _ = await app.post("/swallow")
    assert (status, body["error"]["code"]) == (500, "transaction_aborted")
    assert rows(empty_database) == []


async def test_output_json_cannot_hold_is_500_and_rolled_back(
    app: Client, empty_database: str
) -> None:
    status, body, response = await app.post("/weird")
    assert (status, body["error"]["code"]) == (500, "invalid_output")
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    assert rows(empty_database) == []


async def test_lock_not_available_is_409_and_the_database_is_not_down(
    app: Client, empty_database: str
) -> None:
    with psycopg.connect(empty_database) as holder:
        holder.execute("INSERT INTO t VALUES ('locked')")
        holder.commit()
        holder.execute("SELECT v FROM t WHERE v = 'locked' FOR UPDATE")
        status, body, _ = await app.post("/nowait")
        assert (status, body["error"]["code"]) == (409, "concurrent_update")
        status, body, _ = await app.get("/count")
        assert (status, body) == (200, {"n": 1})
        assert (await app.get("/readyz"))[0] == 200
        assert not app.runtime.database.is_down


async def test_timeout_seconds_is_504_and_rolled_back(app: Client, empty_database: str) -> None:
    status, body, _ = await app.post("/slow")  # its handler would sleep an hour
    assert (status, body["error"]["code"]) == (504, "timeout")
    assert rows(empty_database) == []


async def test_a_full_pool_is_busy_not_down(app: Client, empty_database: str) -> None:
    async with await psycopg.AsyncConnection.connect(empty_database) as gate:
        await gate.execute("SELECT pg_advisory_xact_lock(7)")  # /hold waits until it is released
        holds = [asyncio.ensure_future(app.post("/hold")) for _ in range(2)]
        # Both pooled connections are taken once both runs wait on the lock.
        assert await eventually(lambda: waiting_on_the_gate(empty_database) == 2)
        status, body, response = await app.get("/count")
        assert (status, body["error"]["code"]) == (503, "server_busy")
        assert response.headers["Retry-After"] == "1"
        assert not app.runtime.database.is_down
        assert (await app.get("/readyz"))[0] == 200
        await gate.rollback()
    assert [(await h)[0] for h in holds] == [200, 200]


def raw_http(base: str, payload: bytes, timeout: float = 30) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


async def test_a_body_that_never_arrives_is_408(app: Client) -> None:
    request = (
        b"POST /gather HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"a":'
    )
    # The rest of the body never comes: only the 1 s body timeout can answer, well
    # before raw_http gives up waiting (30 s) and returns what it has, nothing.
    answer = await asyncio.to_thread(raw_http, app.base, request)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"x-trace-id" in answer.lower()


async def test_absolute_form_request_target(app: Client) -> None:
    request = (
        b"GET http://example.test/count HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    )
    answer = await asyncio.to_thread(raw_http, app.base, request)
    assert answer.startswith(b"HTTP/1.1 200")


async def test_builtins_answer_405_for_other_methods(app: Client) -> None:
    status, body, response = await app.post("/healthz")
    assert (status, body["error"]["code"], response.headers["Allow"]) == (
        405,
        "method_not_allowed",
        "GET, HEAD",
    )
    status, _, _ = await app.get("/healthz/")
    assert status == 200
