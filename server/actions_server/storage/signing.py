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


# More digits than any expiry signed here (year 33658): refused before int() reads them.
_MAX_EXPIRES_DIGITS = 12


def verify(
    secret: bytes, key: str, expires: str | None, given: str | None, now: float | None = None
) -> str | None:
    """None when the URL is good; otherwise what is wrong with it.

    The parameters are whatever a client put in the URL: this never raises.
    """
    if not expires or not given:
        return "the URL is not signed"
    # str.isdigit() also says yes to "²" and "١٢٣", which int() refuses or reads.
    if not (expires.isascii() and expires.isdigit()) or len(expires) > _MAX_EXPIRES_DIGITS:
        return "the URL's expiry is not a time"
    # compare_digest refuses str with non-ASCII characters (TypeError).
    if not given.isascii() or not hmac.compare_digest(signature(secret, key, int(expires)), given):
        return "the URL's signature is wrong"
    if int(expires) < (now if now is not None else time.time()):
        return "the URL has expired"
    return None
