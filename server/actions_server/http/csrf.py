"""Cross-site request forgery: a cookie-authenticated unsafe request must come from
the app's own pages, or from an origin CORS lets send credentials.

Browsers say where a request comes from: `Sec-Fetch-Site` (all current browsers)
and `Origin` (every cross-origin and every POST). Checking them needs no token in
forms and no state; a double-submit token would, and protects nothing more
against a browser that sends these headers. A cookie request that carries
neither header is refused: a browser always sends one of them on an unsafe
request, so such a caller is not a browser and should use a bearer token.
Bearer requests need no check: a page on another site cannot make a browser
attach an Authorization header.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ActionError, Forbidden
from .cors import CorsPolicy, normal_origin

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_denial(
    method: str, headers: Mapping[str, str], cors: CorsPolicy | None
) -> ActionError | None:
    """Why a cookie-authenticated request is refused, or None when it may go on.

    The request's own origin is compared by host and port (the Host header): a
    TLS-terminating proxy in front makes the scheme the server sees unreliable.
    """
    if method not in UNSAFE:
        return None
    origin = headers.get("Origin")
    site = headers.get("Sec-Fetch-Site")
    if origin is not None and origin != "null":
        authority = normal_origin(origin).partition("://")[2]
        if authority and authority == headers.get("Host", "").lower():
            return None
        if cors is not None and cors.credentials and cors.allows(origin):
            return None
        return _refused(f"the request comes from {origin}, not from this app's pages")
    if site == "same-origin":
        return None
    if site is not None:
        return _refused(f"the browser says the request is {site}")
    return _refused("it carries neither Origin nor Sec-Fetch-Site")


def _refused(why: str) -> Forbidden:
    return Forbidden(
        f"a request signed in with the session cookie must come from the app's own pages: {why}"
        " (API clients send Authorization: Bearer instead)",
        code="csrf_refused",
    )
