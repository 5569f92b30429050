"""Slow headers and too many connections, through real sockets: `server.header_timeout_seconds`
closes a connection whose request headers do not arrive in time, `server.max_connections`
caps how many are open at once, and neither slows the clients that behave."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app
from support.processes import Served, free_port
from support.raw_http import (
    RawResponse,
    closed,
    connect,
    exchange,
    get,
    is_closed_by_peer,
    read_response,
)

pytestmark = pytest.mark.integration

MANIFEST = """
module: hello
actions:
  - name: hello.get
    handler: PKG.handlers:hello
    triggers: [{api: GET /hello}]
"""

HANDLERS = """
async def hello(input, ctx):
    return {"hello": "world"}
"""

HEADER_TIMEOUT = 1.5


async def served_app(tmp_path: Path, database: str, server: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path, {"hello.yaml": MANIFEST}, HANDLERS, config=f"app: probe\nserver: {server}\n"
    )
    async with serving(config, database) as client:
        yield client


@pytest.fixture
async def client(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    async for client in served_app(
        tmp_path, database, f"{{header_timeout_seconds: {HEADER_TIMEOUT}}}"
    ):
        yield client


def assert_json_error(response: RawResponse, status: int, code: str) -> None:
    assert response.status == status, response
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Send `data` one byte every `interval` seconds, until it is sent or the server closes."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)
    except OSError:
        pass


async def test_trickling_headers_are_cut_off_while_others_are_served(client: Client) -> None:
    reader, writer = await connect(client.base)
    started = time.monotonic()
    # Every byte arrives well within the timeout of the previous one: only a deadline
    # on the whole head, not an idle timeout, closes this.
    slow = asyncio.create_task(trickle(writer, get("/hello", headers="X-A: b\r\n"), 0.2))
    closing = asyncio.create_task(is_closed_by_peer(reader, HEADER_TIMEOUT + 3))
    latencies = []
    while not closing.done():
        before = time.monotonic()
        status, body, _ = await client.get("/hello")
        latencies.append(time.monotonic() - before)
        assert (status, body) == (200, {"hello": "world"})
        await asyncio.sleep(0.05)
    assert await closing
    elapsed = time.monotonic() - started
    slow.cancel()
    writer.close()
    await closed(writer)
    assert HEADER_TIMEOUT - 0.1 <= elapsed <= HEADER_TIMEOUT + 1.5
    assert len(latencies) >= 10
    assert max(latencies) < 0.5


async def test_the_slow_client_is_told_408_before_the_close(client: Client) -> None:
    reader, writer = await connect(client.base)
    try:
        writer.write(b"GET /hello HTTP/1.1\r\nHost: t\r\n")  # and nothing more
        assert_json_error(await read_response(reader, HEADER_TIMEOUT + 2), 408, "request_timeout")
        assert await is_closed_by_peer(reader, 1)
    finally:
        writer.close()
        await closed(writer)


async def test_a_connection_that_sends_nothing_is_closed_too(client: Client) -> None:
    reader, writer = await connect(client.base)
    try:
        assert await is_closed_by_peer(reader, HEADER_TIMEOUT + 1.5)
    finally:
        writer.close()
        await closed(writer)


async def test_an_idle_keep_alive_connection_is_not_cut_but_a_slow_next_request_is(
    client: Client,
) -> None:
    reader, writer = await connect(client.base)
    try:
        writer.write(get("/hello"))
        assert (await read_response(reader)).status == 200
        # Idle between requests: aiohttp's keep-alive timeout applies, not ours.
        assert not await is_closed_by_peer(reader, HEADER_TIMEOUT + 0.5)
        writer.write(get("/hello"))
        assert (await read_response(reader)).status == 200
        # A next request that starts arriving must complete its head in time.
        started = time.monotonic()
        writer.write(b"GET /hello HTTP/1.1\r\n")
        response = await read_response(reader, HEADER_TIMEOUT + 2)
        assert_json_error(response, 408, "request_timeout")
        assert time.monotonic() - started >= HEADER_TIMEOUT - 0.1
    finally:
        writer.close()
        await closed(writer)


async def test_a_slow_body_is_not_a_slow_head(client: Client) -> None:
    """Once the head is in, the body has its own limit (server.body_timeout_seconds)."""
    reader, writer = await connect(client.base)
    try:
        writer.write(
            b"GET /hello HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\n\r\n{"
        )
        await asyncio.sleep(HEADER_TIMEOUT + 0.5)
        writer.write(b"}")
        assert (await read_response(reader)).status == 200
    finally:
        writer.close()
        await closed(writer)


@pytest.fixture
async def capped(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    async for client in served_app(
        tmp_path, database, "{max_connections: 3, header_timeout_seconds: 30}"
    ):
        yield client


async def test_the_connection_past_the_cap_is_refused_until_one_closes(capped: Client) -> None:
    held = [await connect(capped.base) for _ in range(3)]
    for _, writer in held:
        writer.write(b"GET /hello HTTP/1.1\r\n")  # busy: a request is arriving
    await asyncio.sleep(0.2)
    try:
        refused = await exchange(capped.base, get("/hello"))
        assert_json_error(refused, 503, "too_many_connections")
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"].lower() == "close"
        # One of the held connections finishes its request and leaves: room again.
        reader, writer = held.pop()
        writer.write(b"Host: t\r\nConnection: close\r\n\r\n")
        assert (await read_response(reader)).status == 200
        writer.close()
        await closed(writer)
        deadline = time.monotonic() + 2
        while (answer := await exchange(capped.base, get("/hello"))).status != 200:
            assert answer.status == 503
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert answer.json() == {"hello": "world"}
    finally:
        for _, writer in held:
            writer.close()
            await closed(writer)


async def test_at_the_cap_an_idle_keep_alive_connection_makes_room(capped: Client) -> None:
    idle = []
    for _ in range(3):
        reader, writer = await connect(capped.base)
        writer.write(get("/hello"))
        assert (await read_response(reader)).status == 200
        idle.append((reader, writer))
    try:
        answer = await exchange(capped.base, get("/hello"))
        assert answer.status == 200
        # The longest idle one was closed for it; the others are still open.
        assert await is_closed_by_peer(idle[0][0], 1)
        for reader, writer in idle[1:]:
            writer.write(get("/hello"))
            assert (await read_response(reader)).status == 200
    finally:
        for _, writer in idle:
            writer.close()
            await closed(writer)


@pytest.mark.timeout(90)
def test_serve_applies_both_limits(tmp_path: Path, database: str) -> None:
    config, _ = write_app(
        tmp_path,
        {"hello.yaml": MANIFEST},
        HANDLERS,
        config=(
            "app: probe\ndatabase: {url: '${DATABASE_URL}'}\n"
            "server: {header_timeout_seconds: 1, max_connections: 2}\n"
        ),
    )
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database}
    served = Served(["serve", str(config), "--port", str(port)], tmp_path, env, tmp_path / "log")
    base = f"http://127.0.0.1:{port}"

    async def probe() -> None:
        held = [await connect(base) for _ in range(2)]
        for _, writer in held:
            writer.write(b"GET /hello HTTP/1.1\r\n")
        await asyncio.sleep(0.2)
        assert_json_error(await exchange(base, get("/hello")), 503, "too_many_connections")
        for reader, writer in held:
            assert_json_error(await read_response(reader, 3), 408, "request_timeout")
            writer.close()
            await closed(writer)
        await asyncio.sleep(0.2)
        assert (await exchange(base, get("/hello"))).status == 200

    try:
        served.wait_until_healthy(base)
        asyncio.run(probe())
    finally:
        code = served.stop()
    assert code == 0, served.output()
    output = served.output()
    assert "Traceback" not in output
    assert "server.max_connections" in output
