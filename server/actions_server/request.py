"""`ctx.request`: the HTTP request behind an api or webhook run (None on other triggers).

A plain value with no aiohttp in it, made on first access (most handlers never
look): method, path, headers, query, the client's address (the right-most
X-Forwarded-For hop a trusted proxy wrote, else the peer) and the raw body bytes
as they arrived (None for a multipart body, which is streamed to files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive; repeated headers through .getall()
    query: Mapping[str, str]  # the first value of each; repeated ones through .getall()
    client: str | None
    body: bytes | None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)
