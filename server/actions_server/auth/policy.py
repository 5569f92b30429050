"""`auth.roles`: which permissions a principal has.

Permissions are the token's own, plus those of its roles, plus, inside an org,
those of its membership's role; a granted permission ending in `*` covers
every permission it prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .principal import Principal, org_role_name


def permits(granted: Iterable[str], needed: str) -> bool:
    """Whether `granted` covers `needed`: exactly, or by a pattern ending in `*`."""
    for pattern in granted:
        if pattern == needed or (pattern.endswith("*") and needed.startswith(pattern[:-1])):
            return True
    return False


class RolePolicy:
    """`auth.roles`: which permissions each role grants.

    A principal from a cached token is the same object request after request,
    so its effective permissions are remembered (bounded), keyed by identity
    and checked against the object itself.
    """

    CACHE_SIZE = 10_000

    def __init__(self, roles: Mapping[str, Iterable[str]]) -> None:
        self._roles = {role: frozenset(perms) for role, perms in roles.items()}
        self._cache: dict[tuple[int, str | None], tuple[Principal, frozenset[str]]] = {}

    def permissions(self, principal: Principal, org_role: str | None) -> frozenset[str]:
        key = (id(principal), org_role)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is principal:
            return cached[1]
        granted = self._compute(principal, org_role)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = (principal, granted)
        return granted

    def _compute(self, principal: Principal, org_role: str | None) -> frozenset[str]:
        granted = set(principal.permissions)
        for role in principal.roles:
            granted |= self._roles.get(role, frozenset())
        if org_role is not None:
            granted |= self._roles.get(org_role_name(org_role), frozenset())
        return frozenset(granted)
