"""Who is calling, as far as the request says: token, client address, org.

The bearer token is verified here (a cached verification is a dict lookup); a
token that is present but refused is not an error yet: it is kept on the Caller
so that a guard that needs an identity answers 401 `invalid_token`, while a
public action still runs.

The client address is the peer's, unless the peer is a trusted proxy
(`server.trusted_proxies`): then the right-most X-Forwarded-For address that is
not itself a trusted proxy, so that a client cannot pick its own rate-limit key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from multidict import CIMultiDictProxy

from ..auth import TokenError, TokenVerifier, bearer_token
from ..guards import NOBODY, Caller

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def in_networks(address: str | None, networks: Sequence[Network]) -> bool:
    """Whether `address` (an IP, as text) lies in one of `networks`."""
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return any(ip in network for network in networks)


def forwarded_for(headers: CIMultiDictProxy[str]) -> str | None:
    """Every X-Forwarded-For line joined with commas (a proxy may add a line rather
    than append to one); None when there is none."""
    return ",".join(headers.getall("X-Forwarded-For", ())) or None


def hops(forwarded: str) -> list[str]:
    """The addresses an X-Forwarded-For value lists, left (client) to right (last proxy)."""
    return [hop.strip() for hop in forwarded.split(",") if hop.strip()]


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The client's address, believing X-Forwarded-For only as far as trusted proxies reach.

    `forwarded_for` is every X-Forwarded-For line joined with commas (proxies
    may add a line rather than append). The right-most hop that is not a
    trusted proxy was written by one; anything left of it the client could
    have sent. A hop that is not an address is never a rate-limit key.
    """
    if not trusted or peer is None or forwarded_for is None or not in_networks(peer, trusted):
        return peer
    for hop in reversed(hops(forwarded_for)):
        if not in_networks(hop, trusted):
            return hop if _is_address(hop) else peer
    return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def caller_of(
    request: web.BaseRequest,
    verifier: TokenVerifier,
    trusted: Sequence[Network],
    *,
    with_ip: bool,
    session_cookie: str | None = None,
) -> Caller:
    """The Caller of a request; the client address only `with_ip` (rate limits need it).

    The token comes from `Authorization: Bearer`, else from the session cookie
    (`auth.session.cookie`), which marks the caller `via_cookie` for the CSRF check.
    """
    headers = request.headers
    org = headers.get("x-org-id")
    ip = None
    if with_ip:
        ip = client_ip(request.remote, forwarded_for(headers), trusted)
    authorization = headers.get("Authorization")
    via_cookie = False
    if authorization is None:
        token = request.cookies.get(session_cookie) if session_cookie else None
        if not token:
            if org is None and ip is None:
                return NOBODY  # the common anonymous request: nothing to build
            return Caller(client_ip=ip, org_header=org)
        via_cookie = True
    try:
        if not via_cookie:
            token = bearer_token(authorization)
        principal = verifier.verify(token) if token else None
    except TokenError as exc:
        return Caller(token_error=exc, client_ip=ip, org_header=org, via_cookie=via_cookie)
    if principal is None:
        return Caller(client_ip=ip, org_header=org)
    return Caller(principal=principal, client_ip=ip, org_header=org, via_cookie=via_cookie)


# Headers only a proxy adds; X-Forwarded-For is checked hop by hop instead.
_PROXY_MARKERS = ("Forwarded", "X-Real-IP", "Via", "X-Forwarded-Host", "X-Forwarded-Proto")


def scraper_allowed(request: web.BaseRequest, allowed: Sequence[Network]) -> bool:
    """Whether the socket peer is allowed and so is every client a proxy names.

    Forwarding headers can only take access away: a request relayed by a proxy
    on this host comes from loopback, but it is the outside client that asked.
    A proxy that adds none of these headers cannot be told apart (docs/metrics.md).
    """
    if not in_networks(request.remote, allowed):
        return False
    headers = request.headers
    if any(marker in headers for marker in _PROXY_MARKERS):
        return False  # relayed, and the client is not named in a form checked here
    return all(in_networks(hop, allowed) for hop in hops(forwarded_for(headers) or ""))
