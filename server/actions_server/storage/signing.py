"""Signed, expiring URLs for the local backend (served by the server itself).

The signature is an HMAC-SHA256 of the key and the expiry time under a secret
the config gives (or derives from the JWT secret); a URL with a wrong or
expired signature is refused with 403, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

ROUTE = "/_storage/"


def signature(secret: bytes, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_path(secret: bytes, key: str, expires_seconds: int, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + expires_seconds)
    return f"{ROUTE}{quote(key)}?expires={expires}&signature={signature(secret, key, expires)}"


def verify(
    secret: bytes, key: str, expires: str | None, given: str | None, now: float | None = None
) -> str | None:
    """None when the URL is good; otherwise what is wrong with it."""
    if not expires or not given or not expires.isdigit():
        return "the URL is not signed"
    if not hmac.compare_digest(signature(secret, key, int(expires)), given):
        return "the URL's signature is wrong"
    if int(expires) < (now if now is not None else time.time()):
        return "the URL has expired"
    return None
