"""HTTP/1.1 spoken byte by byte over `asyncio.open_connection`, for what aiohttp's
client will not send: oversized or broken request lines and headers, headers that
trickle in, connections held open on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True, kw_only=True)
class RawResponse:
    status: int
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def address(base: str) -> tuple[str, int]:
    parts = urlsplit(base)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = address(base)
    return await asyncio.open_connection(host, port, limit=1024 * 1024)


async def read_response(reader: asyncio.StreamReader, seconds: float = 10) -> RawResponse:
    """One response: its head, then a Content-Length body or everything up to EOF."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = status_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
    return RawResponse(status=int(status), version=version, headers=headers, body=body)


async def exchange(base: str, data: bytes, seconds: float = 10) -> RawResponse:
    """Send `data` on a new connection and read the one response."""
    reader, writer = await connect(base)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader, seconds)
    finally:
        writer.close()
        await closed(writer)


async def closed(writer: asyncio.StreamWriter) -> None:
    # A server that closed first may have reset the connection: closed all the same.
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def is_closed_by_peer(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (whatever it sends first)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except OSError:  # a reset is a close too
        return True
    return True


def get(path: str = "/healthz", *, headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode()
