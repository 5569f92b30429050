"""Who is calling, as a value: anonymous, a user, or the system (cron).

A `Principal` serialises to JSON so that it can travel with a job and be
restored by the worker that runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS_KIND, USER_KIND, SYSTEM_KIND = "anonymous", "user", "system"
ORG_ROLE_PREFIX = "org:"


def org_role_name(stored: str) -> str:
    """The role a membership grants, as `auth.roles` and `has_role` name it.

    The seed stores memberships as `org:admin`; a bare `admin` (an older
    schema, or another app's) means the same role.
    """
    return stored if stored.startswith(ORG_ROLE_PREFIX) else ORG_ROLE_PREFIX + stored


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The caller of a run, before org membership is looked up."""

    kind: str = ANONYMOUS_KIND
    user_id: str | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict)
    org_id: str | None = None  # carried with events and jobs; HTTP callers name it per request
    org_role: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.kind != ANONYMOUS_KIND

    def to_json(self) -> dict[str, Any]:
        """What travels with an event or a job (claims beyond `sub` stay behind)."""
        return {
            "kind": self.kind,
            "user_id": self.user_id,
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "org_id": self.org_id,
            "org_role": self.org_role,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Principal:
        return cls(
            kind=data.get("kind", ANONYMOUS_KIND),
            user_id=data.get("user_id"),
            roles=frozenset(data.get("roles", ())),
            permissions=frozenset(data.get("permissions", ())),
            claims={"sub": data["user_id"]} if data.get("user_id") else {},
            org_id=data.get("org_id"),
            org_role=data.get("org_role"),
        )


ANONYMOUS = Principal()
SYSTEM = Principal(kind=SYSTEM_KIND)
