"""`WholeResponse` puts on the wire what aiohttp's own `web.Response` does.

One aiohttp low-level server answers each case twice, once as `web.Response` and
once as `WholeResponse`, and the two answers are compared byte for byte (the
`Date` value aside), together with whether the connection stays open for a next
request. The cases cover what aiohttp decides for a response: Content-Length,
Content-Type, Date, Server and Connection, for HTTP/1.0 and 1.1, keep-alive and
close, HEAD, 204, 304, a forced close, and the answers `WholeResponse` leaves to
aiohttp (cookies, a hand-set Content-Length, a header with a line break).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from multidict import CIMultiDict

from actions_server.http.whole import WholeResponse

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json", "x-trace-id": "0123abcd"}


def _cookie(response: web.Response) -> None:
    response.set_cookie("session", "abc", httponly=True)


def _close(response: web.Response) -> None:
    response.force_close()


# name: (status, headers, body, what is done to the response before it is returned)
CASES: dict[str, tuple[int, Any, bytes | None, Callable[[web.Response], None] | None]] = {
    "json": (200, JSON, b'{"message":"Hello, world!"}', None),
    "created": (201, JSON, b'{"id":1}', None),
    "error": (404, JSON, b'{"error":{"code":"not_found"}}', None),
    "no body": (200, {"x-trace-id": "0123abcd"}, None, None),
    "no content": (204, {"x-trace-id": "0123abcd"}, None, None),
    "not modified": (304, {"ETag": '"v1"'}, None, None),
    "bytes without a type": (200, {}, b"\x00\x01raw", None),
    "teapot": (418, JSON, b"{}", None),
    "two values of a header": (200, CIMultiDict([("Link", "<a>"), ("Link", "<b>")]), b"x", None),
    "own Date": (200, {"Date": "Thu, 01 Jan 1970 00:00:00 GMT"}, b"x", None),
    "own Connection": (200, {"Connection": "close"}, b"x", None),
    "own Server": (200, {"Server": "mine"}, b"x", None),
    "forced close": (200, JSON, b"{}", _close),
    "cookie (aiohttp's way)": (200, JSON, b"{}", _cookie),
    "own Content-Length (aiohttp's way)": (200, {"Content-Length": "3"}, b"abc", None),
    "line break in a header (refused alike)": (200, {"X-Bad": "a\r\nInjected: 1"}, b"x", None),
}

REQUESTS = {
    "GET 1.1": b"GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET 1.1 close": b"GET /{} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "GET 1.0": b"GET /{} HTTP/1.0\r\n\r\n",
    "GET 1.0 keep-alive": b"GET /{} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "HEAD 1.1": b"HEAD /{} HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST 1.1": b"POST /{} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}",
    "POST 1.1, body unread, pipelined": (
        b"POST /{} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}"
        b"GET /json/aiohttp HTTP/1.1\r\nHost: t\r\n\r\n"
    ),
}

# The cases WholeResponse leaves to aiohttp; every other one it must send itself.
AIOHTTPS_WAY = {"cookie (aiohttp's way)", "own Content-Length (aiohttp's way)"}

PROBE = b"GET /json/aiohttp HTTP/1.1\r\nHost: t\r\n\r\n"


class _Watched(WholeResponse):
    """A WholeResponse that notes each answer it sent by its own path."""

    sent_whole: ClassVar[list[str]] = []

    def _send_whole(self, request: web.BaseRequest) -> int:
        self.sent_whole.append(request.path)
        return super()._send_whole(request)


async def answer(request: web.BaseRequest) -> web.StreamResponse:
    name, kind = request.path.lstrip("/").rsplit("/", 1)
    status, headers, body, then = CASES[name.replace("_", " ")]
    made = (_Watched if kind == "whole" else web.Response)(
        status=status, headers=CIMultiDict(headers), body=body
    )
    if then is not None:
        then(made)
    return made


@asynccontextmanager
async def listening(runner: web.BaseRunner) -> AsyncIterator[int]:
    """`runner` served on 127.0.0.1 until the block ends; its port."""
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    async with listening(web.ServerRunner(web.Server(answer, handler_cancellation=True))) as port:
        yield port


async def wire(port: int, request: bytes) -> tuple[bytes, bool]:
    """The bytes of the answers to `request`'s requests (Date blanked), and whether
    a next request on the connection is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        writer.write(request)
        for _ in range(request.count(b" HTTP/1.")):
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except asyncio.IncompleteReadError as exc:  # closed without a (whole) answer
                return got + exc.partial, False
            length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
            body = b""
            if length is not None and not request.startswith(b"HEAD"):
                body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), 5)
            got += re.sub(rb"\r\nDate: [^\r]+", b"\r\nDate: -", head) + body
        try:
            writer.write(PROBE)
            more = await asyncio.wait_for(reader.read(64), 5)
        except ConnectionError:
            more = b""
        return got, bool(more)
    finally:
        writer.close()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("request_kind", list(REQUESTS))
async def test_whole_response_sends_what_aiohttp_sends(
    port: int, case: str, request_kind: str
) -> None:
    path = case.replace(" ", "_")
    template = REQUESTS[request_kind]
    theirs = await wire(port, template.replace(b"{}", f"{path}/aiohttp".encode(), 1))
    _Watched.sent_whole.clear()
    ours = await wire(port, template.replace(b"{}", f"{path}/whole".encode(), 1))
    assert ours == theirs
    taken = [f"/{path}/whole"] if case not in AIOHTTPS_WAY else []
    assert _Watched.sent_whole == taken  # the comparison was of WholeResponse's own path


async def test_a_web_application_still_fires_on_response_prepare() -> None:
    """Under a web.Application the answer goes aiohttp's way, with the app's signals."""

    async def hello(request: web.Request) -> web.StreamResponse:
        return WholeResponse(body=b"{}", headers=JSON)

    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Prepared"] = "yes"

    app = web.Application()
    app.router.add_get("/hello", hello)
    app.on_response_prepare.append(stamp)
    async with listening(web.AppRunner(app)) as port:
        got, _ = await wire(port, REQUESTS["GET 1.1"].replace(b"{}", b"hello"))
    assert b"\r\nX-Prepared: yes\r\n" in got
    assert got.endswith(b"\r\n\r\n{}")


class _Recorder(AbstractAccessLogger):
    """aiohttp logs a request's access once its answer is wholly handed over."""

    done: ClassVar[list[str]] = []

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.done.append(f"{request.path} {response.body_length}")


@pytest.mark.parametrize("kind", ["aiohttp", "whole"])
async def test_a_big_answer_waits_for_a_slow_reader(kind: str) -> None:
    """Like aiohttp's write_eof, the answer is not done while the client does not read:
    a slow reader holds its own connection, not the server's memory."""
    body = b"x" * (48 * 1024 * 1024)  # well over the kernel's socket buffers

    async def big(request: web.BaseRequest) -> web.StreamResponse:
        return (WholeResponse if kind == "whole" else web.Response)(body=body)

    _Recorder.done.clear()
    server = web.Server(big, access_log_class=_Recorder, access_log=logging.getLogger("t"))
    async with listening(web.ServerRunner(server)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(1)
        assert _Recorder.done == []  # still sending
        head = await reader.readuntil(b"\r\n\r\n")
        assert f"Content-Length: {len(body)}".encode() in head
        assert await reader.readexactly(len(body)) == body
        for _ in range(50):
            if _Recorder.done:
                break
            await asyncio.sleep(0.05)
        assert _Recorder.done == [f"/big {len(head) + len(body)}"]  # the head counts too
        writer.close()


async def test_an_error_after_prepare_sends_no_second_answer() -> None:
    """A handler that prepares a WholeResponse itself and then fails: the answer is
    out, so aiohttp closes the connection rather than send a 500 after it (which
    a pipelining client would take for its next request's answer)."""

    async def prepared_then_failed(request: web.BaseRequest) -> web.StreamResponse:
        await WholeResponse(body=b"first", headers=JSON).prepare(request)
        raise RuntimeError("after prepare")

    async with listening(web.ServerRunner(web.Server(prepared_then_failed))) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        got = await asyncio.wait_for(reader.read(), 5)  # up to the server's close
        writer.close()
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"\r\n\r\nfirst")
    assert got.count(b"HTTP/1.1") == 1
