"""Requests aiohttp cannot parse, through a real socket: 431, 414 or 400 in the one
error body with `x-trace-id`, never an echo of the input, one log line each."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app
from support.processes import Served, free_port
from support.raw_http import RawResponse, connect, exchange, get, is_closed_by_peer, read_response

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

# Sent in every bad request: it must come back in no response and no log line.
MARKER = "SeCrEtMaRkEr"

CASES = {
    "header_too_large": (
        get("/hello", headers=f"X-Big: {MARKER}{'s' * 9000}\r\n"),
        431,
        "headers_too_large",
    ),
    "header_name_too_large": (
        get("/hello", headers=f"X-{MARKER}{'n' * 9000}: v\r\n"),
        431,
        "headers_too_large",
    ),
    "too_many_headers": (
        get("/hello", headers="".join(f"X-{MARKER}-{i}: v\r\n" for i in range(200))),
        431,
        "headers_too_large",
    ),
    "url_too_long": (get(f"/hello?{MARKER}={'a' * 9000}"), 414, "uri_too_long"),
    "nul_in_the_target": (
        f"GET /hello\x00{MARKER} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        400,
        "malformed_request",
    ),
    "control_byte_in_the_method": (
        f"G\x01T /{MARKER} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        400,
        "malformed_request",
    ),
    "non_ascii_in_the_target": (
        f"GET /h\u00e9llo/{MARKER} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        400,
        "malformed_request",
    ),
    "spaces_in_the_target": (
        f"GET /a {MARKER} c HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        400,
        "malformed_request",
    ),
    "unknown_version": (
        f"GET /{MARKER} HTTP/7.1\r\nHost: t\r\n\r\n".encode(),
        400,
        "malformed_request",
    ),
    "tls_on_the_http_port": (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARKER.encode() + b"\r\n\r\n",
        400,
        "malformed_request",
    ),
    "header_without_a_colon": (
        get("/hello", headers=f"{MARKER} no colon\r\n"),
        400,
        "malformed_request",
    ),
}


@pytest.fixture
async def client(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"hello.yaml": MANIFEST}, HANDLERS, config="app: probe\n")
    async with serving(config, database) as c:
        yield c


def assert_json_error(response: RawResponse, status: int, code: str) -> None:
    assert response.status == status, response
    assert response.version == "HTTP/1.1"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "trace_id"}
    assert body["error"]["code"] == code
    assert body["error"]["details"] == []
    assert body["error"]["trace_id"] == response.headers["x-trace-id"]
    assert len(response.headers["x-trace-id"]) == 32
    assert response.headers["connection"].lower() == "close"


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_request_aiohttp_cannot_parse_gets_the_one_error_body(
    client: Client, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    data, status, code = CASES[case]
    caplog.set_level(logging.DEBUG)
    response = await exchange(client.base, data)
    assert_json_error(response, status, code)
    head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    assert MARKER not in head
    assert MARKER.encode() not in response.body
    # One line, a warning with the trace id and without a traceback; nothing else.
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    [record] = logged
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert getattr(record, "trace_id", None) == response.headers["x-trace-id"]
    message = record.getMessage()
    assert str(status) in message
    assert "\n" not in message
    assert MARKER not in message
    assert not [r for r in caplog.records if r.name == "aiohttp.server"]


async def test_the_connection_still_serves_other_clients(client: Client) -> None:
    for data, status, code in CASES.values():
        assert_json_error(await exchange(client.base, data), status, code)
    status, body, _ = await client.get("/hello")
    assert (status, body) == (200, {"hello": "world"})


async def test_a_bad_request_after_a_good_one_on_a_keep_alive_connection(client: Client) -> None:
    reader, writer = await connect(client.base)
    try:
        writer.write(get("/hello"))
        first = await read_response(reader)
        assert first.status == 200
        writer.write(get("/hello", headers=f"X-Big: {'s' * 9000}\r\n"))
        assert_json_error(await read_response(reader), 431, "headers_too_large")
        assert await is_closed_by_peer(reader, 2)
    finally:
        writer.close()


@pytest.mark.timeout(90)
def test_serve_answers_protocol_errors_and_logs_one_line_each(
    tmp_path: Path, database: str
) -> None:
    config, _ = write_app(
        tmp_path,
        {"hello.yaml": MANIFEST},
        HANDLERS,
        config="app: probe\ndatabase: {url: '${DATABASE_URL}'}\n",
    )
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database}
    served = Served(["serve", str(config), "--port", str(port)], tmp_path, env, tmp_path / "log")
    base = f"http://127.0.0.1:{port}"
    try:
        served.wait_until_healthy(base)
        before = served.output()

        async def send_all() -> list[RawResponse]:
            return [await exchange(base, data) for data, _, _ in CASES.values()]

        responses = asyncio.run(send_all())
        for response, (_, status, code) in zip(responses, CASES.values(), strict=True):
            assert_json_error(response, status, code)
        deadline = time.monotonic() + 5
        while served.output().count("malformed request") < len(CASES):
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.05)
    finally:
        code = served.stop()
    assert code == 0, served.output()
    added = served.output()[len(before) :]
    assert "Traceback" not in added
    assert MARKER not in added
    lines = [line for line in added.splitlines() if "malformed request" in line]
    assert len(lines) == len(CASES), added
    for response in responses:
        assert sum(response.headers["x-trace-id"] in line for line in lines) == 1
