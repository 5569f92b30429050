"""`Response`: what a handler returns when plain JSON with the trigger's status is
not enough: another status, headers, cookies, raw bytes, a stream, a redirect.

The output schema applies to `body` only. On triggers that are not HTTP (a job,
an event, cron, `call`) a Response is unwrapped to its body, so one handler can
serve both. A `Cookie` carries every attribute a browser understands; its
defaults are the safe ones (HttpOnly, SameSite=Lax, Path=/).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SAME_SITE = ("Strict", "Lax", "None")
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True, slots=True, kw_only=True)
class Cookie:
    """A `Set-Cookie`. `max_age=0` (or an `expires` in the past) deletes it."""

    name: str
    value: str = ""
    max_age: int | None = None
    expires: datetime.datetime | None = None
    path: str | None = "/"
    domain: str | None = None
    secure: bool = False
    http_only: bool = True
    same_site: str | None = "Lax"

    def __post_init__(self) -> None:
        if self.same_site is not None and self.same_site not in SAME_SITE:
            raise ValueError(f"same_site must be one of {SAME_SITE}, not {self.same_site!r}")
        if self.same_site == "None" and not self.secure:
            raise ValueError("a cookie with same_site='None' must be secure (browsers drop it)")


class Response:
    """An HTTP answer under the handler's control.

    `body`: JSON-able data (validated against the output schema), `bytes` (sent
    as is, `content_type` defaulting to application/octet-stream), an async
    iterable of bytes (streamed: a large file in bounded memory), or None (204
    unless a status is given). `status` None means the trigger's status.
    """

    __slots__ = ("body", "content_length", "content_type", "cookies", "headers", "status")

    def __init__(
        self,
        body: Any = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Iterable[Cookie] = (),
        content_type: str | None = None,
        content_length: int | None = None,
    ) -> None:
        if status is not None and not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {status!r}")
        self.body = body
        self.status = status
        self.headers = dict(headers or {})
        self.cookies = tuple(cookies)
        self.content_type = content_type
        self.content_length = content_length

    @classmethod
    def redirect(cls, url: str, status: int = 303, *, cookies: Iterable[Cookie] = ()) -> Response:
        """Send the client to `url` (303 See Other by default: after a POST, GET it)."""
        if status not in REDIRECTS:
            raise ValueError(f"a redirect's status is one of {REDIRECTS}, not {status}")
        return cls(None, status=status, headers={"Location": url}, cookies=cookies)

    @property
    def is_stream(self) -> bool:
        return isinstance(self.body, AsyncIterable)

    @property
    def is_raw(self) -> bool:
        return isinstance(self.body, bytes | bytearray | memoryview) or self.is_stream

    def __repr__(self) -> str:
        return f"<Response {self.status or '(trigger status)'} {type(self.body).__name__}>"
