"""CORS (`server.cors`), decided as pure functions of the request's headers.

One policy, applied outermost: a preflight (`OPTIONS` with
`Access-Control-Request-Method`) to a path that exists is answered 204 before
routing, guards or body reading; to a path that does not, 404. Every other
response, errors included, carries the CORS headers when the origin is allowed,
and `Vary: Origin` whenever the answer depends on it. `*` is never sent together
with credentials: the request's own origin is echoed instead (the Fetch
standard refuses `*` with credentials).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import CorsConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPolicy:
    origins: frozenset[str] | None  # None: any origin ("*")
    credentials: bool = False
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int

    @classmethod
    def from_config(cls, config: CorsConfig) -> CorsPolicy:
        origins = config.origins
        return cls(
            origins=None if origins == "*" else frozenset(normal_origin(o) for o in origins),
            credentials=config.credentials,
            allow_headers=tuple(h.lower() for h in config.allow_headers),
            expose_headers=tuple(h.lower() for h in config.expose_headers),
            max_age=config.max_age,
        )

    def allows(self, origin: str) -> bool:
        return self.origins is None or normal_origin(origin) in self.origins

    def _allow_origin(self, origin: str) -> dict[str, str]:
        if self.origins is None and not self.credentials:
            headers = {"Access-Control-Allow-Origin": "*"}
        else:
            headers = {"Access-Control-Allow-Origin": origin}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def vary(self) -> str | None:
        """`Vary` for every response: the answer depends on Origin unless it is `*`."""
        return None if self.origins is None and not self.credentials else "Origin"

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """The CORS headers of an actual (not preflight) response to `origin`."""
        if origin is None or not self.allows(origin):
            return {}
        headers = self._allow_origin(origin)
        if self.expose_headers:
            headers["Access-Control-Expose-Headers"] = ", ".join(self.expose_headers)
        return headers

    def preflight_headers(
        self, origin: str, methods: Iterable[str], requested_headers: str | None
    ) -> dict[str, str] | None:
        """The headers of a 204 answer to a preflight, or None when refused (the
        origin, or a requested header, is not allowed)."""
        if not self.allows(origin):
            return None
        asked = [h.strip().lower() for h in (requested_headers or "").split(",") if h.strip()]
        if any(h not in self.allow_headers for h in asked):
            return None
        headers = self._allow_origin(origin)
        headers["Access-Control-Allow-Methods"] = ", ".join(sorted(methods))
        headers["Access-Control-Allow-Headers"] = ", ".join(self.allow_headers)
        headers["Access-Control-Max-Age"] = str(self.max_age)
        headers["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        return headers


def normal_origin(origin: str) -> str:
    """An origin as compared: lower case, no trailing slash, default ports dropped."""
    origin = origin.strip().rstrip("/").lower()
    for scheme, port in (("https://", ":443"), ("http://", ":80")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin
