"""`ctx.auth`: the caller of one run, as the guards have established it, and the
auth settings of the running app behind it."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config import AuthConfig
from ..response import Cookie
from .passwords import hash_password, verify_password
from .policy import RolePolicy, permits
from .principal import SYSTEM_KIND, Principal, org_role_name
from .revocation import RevocationList, revoke_token
from .tokens import TokenIssuer, TokenVerifier

if TYPE_CHECKING:
    from ..db.session import DbSession

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class Auth:
    """The auth settings of a running app: verifier, issuer, role policy."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.revoked = RevocationList()
        self.verifier = TokenVerifier(config.jwt, self.revoked)
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

    __slots__ = ("_auth", "_cookies", "_db", "_permissions", "org_id", "org_role", "principal")

    def __init__(self, auth: Auth, principal: Principal) -> None:
        self._auth = auth
        self.principal = principal
        self.org_id = principal.org_id
        self.org_role = principal.org_role
        self._permissions: frozenset[str] | None = None
        self._db: DbSession | None = None
        self._cookies: list[Cookie] | None = None

    def bind(self, db: DbSession, cookies: list[Cookie]) -> None:
        """Give `login`/`logout` the run's database session and its response cookies."""
        self._db, self._cookies = db, cookies

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

    def login(
        self,
        user_id: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        ttl_seconds: int | None = None,
    ) -> str:
        """Sign the user in: a token (the same JWT the API accepts) set as the session
        cookie (`auth.session`) on the HTTP response, and returned for API clients."""
        session = self._auth.config.session
        ttl = ttl_seconds or session.ttl_seconds
        token = self.issue_token(
            user_id, roles=roles, permissions=permissions, ttl_seconds=ttl, claims=claims
        )
        if session.cookie and self._cookies is not None:
            self._cookies.append(
                Cookie(
                    name=session.cookie,
                    value=token,
                    max_age=ttl,
                    secure=session.secure,
                    same_site=session.same_site,
                )
            )
        return token

    async def logout(self) -> None:
        """Sign the caller out: its token is revoked (in the run's transaction: on every
        instance within a second of the commit) and the session cookie cleared."""
        jti, expires = self.claims.get("jti"), self.claims.get("exp")
        if isinstance(jti, str) and isinstance(expires, int | float) and self._db is not None:
            await revoke_token(await self._db.connection(), jti, float(expires))
        session = self._auth.config.session
        if session.cookie and self._cookies is not None:
            self._cookies.append(
                Cookie(
                    name=session.cookie,
                    value="",
                    max_age=0,
                    expires=EPOCH,
                    secure=session.secure,
                    same_site=session.same_site,
                )
            )

    def __repr__(self) -> str:
        return f"<AuthContext {self.principal.kind} user={self.user_id!r} org={self.org_id!r}>"
