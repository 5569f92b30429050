"""`ctx.auth`: the caller of one run, as the guards have established it, and the
auth settings of the running app behind it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..config import AuthConfig
from .passwords import hash_password, verify_password
from .policy import RolePolicy, permits
from .principal import SYSTEM_KIND, Principal, org_role_name
from .tokens import TokenIssuer, TokenVerifier


class Auth:
    """The auth settings of a running app: verifier, issuer, role policy."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.verifier = TokenVerifier(config.jwt)
        self.issuer = TokenIssuer(config.jwt)
        self.policy = RolePolicy(config.roles)

    def use_roles(self, config: AuthConfig) -> None:
        """Grant `config.roles` from the next permission check on (`serve --reload`).

        Only the roles change: tokens are still verified with the keys the
        process started with.
        """
        self.config = replace(self.config, roles=config.roles)
        self.policy = RolePolicy(config.roles)


class AuthContext:
    """`ctx.auth`: the caller of this run, as the guards have established it."""

    __slots__ = ("_auth", "_permissions", "org_id", "org_role", "principal")

    def __init__(self, auth: Auth, principal: Principal) -> None:
        self._auth = auth
        self.principal = principal
        self.org_id = principal.org_id
        self.org_role = principal.org_role
        self._permissions: frozenset[str] | None = None

    @property
    def user_id(self) -> str | None:
        return self.principal.user_id

    @property
    def claims(self) -> Mapping[str, Any]:
        return self.principal.claims

    @property
    def is_authenticated(self) -> bool:
        return self.principal.is_authenticated

    @property
    def is_system(self) -> bool:
        return self.principal.kind == SYSTEM_KIND

    @property
    def roles(self) -> frozenset[str]:
        if self.org_role is None:
            return self.principal.roles
        return self.principal.roles | {org_role_name(self.org_role)}

    @property
    def permissions(self) -> frozenset[str]:
        if self._permissions is None:
            self._permissions = self._auth.policy.permissions(self.principal, self.org_role)
        return self._permissions

    def enter_org(self, org_id: str, role: str) -> None:
        """Set by `in_org` once membership is established."""
        self.org_id, self.org_role = org_id, role
        self._permissions = None

    def has_permission(self, permission: str) -> bool:
        return self.is_system or permits(self.permissions, permission)

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def as_principal(self) -> Principal:
        """The principal to carry with events and jobs this run creates."""
        return Principal(
            kind=self.principal.kind,
            user_id=self.principal.user_id,
            roles=self.principal.roles,
            permissions=self.principal.permissions,
            claims=self.principal.claims,
            org_id=self.org_id,
            org_role=self.org_role,
        )

    async def hash_password(self, password: str) -> str:
        return await hash_password(password)

    async def verify_password(self, password: str, hashed: str) -> bool:
        return await verify_password(password, hashed)

    def issue_token(
        self,
        user_id: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        ttl_seconds: int = 3600,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        return self._auth.issuer.issue(
            user_id, roles=roles, permissions=permissions, ttl_seconds=ttl_seconds, claims=claims
        )

    def __repr__(self) -> str:
        return f"<AuthContext {self.principal.kind} user={self.user_id!r} org={self.org_id!r}>"
