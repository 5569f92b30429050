"""The official MCP Python SDK's client (package `mcp`), pointed at a served app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

# The two ways a client speaks to /mcp: "auto" probes server/discover and settles on
# 2026-07-28; "legacy" does the initialize handshake of 2025-11-25.
MODES = ("auto", "legacy")


@asynccontextmanager
async def mcp_client(
    url: str,
    *,
    mode: str,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> AsyncIterator[Client]:
    """A connected SDK client for `url` (…/mcp), sending `Authorization: Bearer token`;
    `transport` carries its HTTP requests (a stand-in for a load balancer)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=sent, timeout=30, transport=transport) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            yield client


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next of `ports` on 127.0.0.1, as a load balancer
    without affinity would; `ports_used` lists where each went."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.ports_used: list[int] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.ports_used) % len(self.ports)]
        self.ports_used.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
