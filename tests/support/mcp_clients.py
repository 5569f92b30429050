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
    url: str, *, mode: str, token: str | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """A connected SDK client for `url` (…/mcp), sending `Authorization: Bearer token`."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(headers=sent, timeout=30) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode=mode, cache=None) as client:
            yield client
