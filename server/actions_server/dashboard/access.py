"""Who may use the dashboard: a valid bearer token with `dashboard.permission`.

Browsers do not send an Authorization header when following links, so the
login form takes a token once and keeps it in a cookie that is HttpOnly (no
script reads it), SameSite=Strict (no other site's page sends it) and scoped to
the dashboard's path; it lasts as long as the token. An Authorization header
works too (for scripts). Every POST carries a CSRF token: an HMAC of the
session's bearer token, which another site cannot compute without the token
itself, so a form posted from anywhere else, even with the cookie, is refused.
The HMAC key is derived from the configured JWT key material (secret, public
key or JWKS), the same in every process of a deployment. POSTs that a browser
marks as cross-site (`Sec-Fetch-Site`, or an `Origin` naming another host) are
refused before anything else, sign-in and sign-out included.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit

from aiohttp import web

from ..auth import Auth, AuthContext, TokenError
from ..config import Config, JwtConfig
from ..http.caller import in_networks, parse_networks, scraper_allowed

LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])

COOKIE = "actions_server_dashboard"


class DashboardAccess:
    def __init__(self, config: Config, auth: Auth) -> None:
        self.auth = auth
        self.permission = config.dashboard.permission
        self.path = config.dashboard.path.rstrip("/") or "/"
        self.trusted_proxies = parse_networks(config.server.trusted_proxies)
        self._key = hmac.new(_key_material(config.auth.jwt), b"dashboard csrf", "sha256").digest()

    def token_of(self, request: web.BaseRequest) -> str | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            return header[7:].strip() or None
        return request.cookies.get(COOKIE) or None

    def check(self, token: str | None) -> tuple[AuthContext | None, str | None]:
        """The caller's auth when the token is good and grants the permission; else why not."""
        if not token:
            return None, None
        try:
            principal = self.auth.verifier.verify(token)
        except TokenError as exc:
            return None, exc.message
        auth = AuthContext(self.auth, principal)
        if not auth.has_permission(self.permission):
            return None, f"this token lacks the permission {self.permission!r}"
        return auth, None

    def csrf(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, given: str | None) -> bool:
        # Bytes: compare_digest refuses str with characters beyond ASCII.
        return given is not None and hmac.compare_digest(self.csrf(token).encode(), given.encode())

    def is_https(self, request: web.BaseRequest) -> bool:
        """Whether the browser talks HTTPS: directly, or to a trusted proxy that says so."""
        if request.secure:
            return True
        return (
            in_networks(request.remote, self.trusted_proxies)
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        )

    def remember(self, response: web.StreamResponse, token: str, secure: bool) -> None:
        response.set_cookie(
            COOKIE, token, path=self.path, httponly=True, samesite="Strict", secure=secure
        )

    def forget(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path=self.path)


def from_elsewhere(request: web.BaseRequest) -> bool:
    """Whether the browser says this request comes from another page than the dashboard's.

    Browsers that send Sec-Fetch-Site are believed on it alone: a proxy may
    rewrite Host, so comparing Origin with Host would refuse the dashboard's own
    forms. A sibling subdomain (`same-site`) is refused too.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a browser, or an old one: the CSRF token still applies
    return origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower()


def from_loopback(request: web.BaseRequest) -> bool:
    """Whether a browser on this machine asks directly, not through a proxy (a proxy on
    loopback relays the whole world)."""
    return scraper_allowed(request, LOOPBACK)


def _key_material(jwt: JwtConfig) -> bytes:
    material = {"secret": jwt.secret, "public_key": jwt.public_key, "jwks": jwt.jwks}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).digest()
