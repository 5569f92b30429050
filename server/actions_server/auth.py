"""Who is calling: principals, bearer tokens, permissions, passwords.

A `Principal` is the caller as a value: anonymous, a user (from a verified JWT,
or carried with an event or a job), or the system (cron). It serialises to JSON
so that it can travel with a job and be restored by the worker that runs it.

Tokens are verified with PyJWT against `auth.jwt`; a verified token is cached
(bounded, until its `exp`) so that a repeat costs a dict lookup instead of the
~40 µs of a signature check. Permissions are the token's own, plus those of its
roles in `auth.roles`, plus, inside an org, those of `org:<membership role>`; a
granted permission ending in `*` covers every permission it prefixes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .config import AuthConfig, JwtConfig
from .errors import ActionError, ActionsServerError

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


# --- tokens -----------------------------------------------------------------------


class TokenError(ActionError):
    """A bearer token that is present but not acceptable: 401 invalid_token."""

    status = 401
    code = "invalid_token"

    def __init__(self, message: str) -> None:
        super().__init__(
            None, None, message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )


class AuthSetupError(ActionsServerError):
    """The app asked for something the auth config cannot do (e.g. sign without a key)."""


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header; TokenError when it is malformed."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise TokenError("the Authorization header must be 'Bearer <token>'")
    return token


class TokenVerifier:
    """Verifies JWTs against `auth.jwt` and caches the principals of good ones."""

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self._keys: dict[str | None, Any] = {}
        if config.is_hmac:
            self._keys[None] = config.secret
        elif config.public_key:
            self._keys[None] = config.public_key
        if config.jwks is not None:
            for key in jwt.PyJWKSet.from_dict(dict(config.jwks)).keys:
                self._keys[key.key_id] = key
        self._cache: dict[str, tuple[Principal, float]] = {}
        # exp is required: a token that never expires cannot be taken back.
        self._options = {"require": ["sub", "exp"], "verify_aud": config.audience is not None}

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() <= expires:
                return principal
            del self._cache[token]
        principal, expires = self._decode(token)
        if self.config.cache_size:
            if len(self._cache) >= self.config.cache_size:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        if not self.config.configured:
            raise TokenError("this server accepts no tokens (auth.jwt is not configured)")
        try:
            header = jwt.get_unverified_header(token)
            key = self._key_for(header)
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token is from another issuer") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("the token's algorithm is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no {exc.claim!r} claim") from None
        except (jwt.PyJWTError, jwt.PyJWKError, ValueError, TypeError):
            # PyJWTError also covers a key that does not fit the token's algorithm.
            raise TokenError("the token is invalid") from None
        return _principal(claims), _expiry(claims, self.config.leeway_seconds)

    def _key_for(self, header: Mapping[str, Any]) -> Any:
        """The configured key, or the JWKS key the token's `kid` names.

        A token without a kid may use the configured key, or the only JWKS key.
        """
        kid = header.get("kid")
        key = self._keys.get(kid) if kid is not None else None
        if key is None and None in self._keys:
            key = self._keys[None]
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise TokenError("no key matches the token's kid")
        return key


def _string_list(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    value = claims.get(name, [])
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError(f"the token's {name!r} claim must be a list of strings")
    return frozenset(value)


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("the token's 'sub' claim must be a non-empty string")
    # org:ROLE roles come from memberships inside an org, never from a token: a
    # token cannot make its bearer an org admin everywhere.
    roles = frozenset(r for r in _string_list(claims, "roles") if not r.startswith(ORG_ROLE_PREFIX))
    return Principal(
        kind=USER_KIND,
        user_id=subject,
        roles=roles,
        permissions=_string_list(claims, "permissions"),
        # Read-only: the principal is shared by every request with this token.
        claims=MappingProxyType(dict(claims)),
    )


def _expiry(claims: Mapping[str, Any], leeway: float) -> float:
    """Until when a verified token may be served from the cache."""
    return float(claims["exp"]) + leeway


class TokenIssuer:
    """Signs tokens for apps that own their users (`ctx.auth.issue_token`)."""

    def __init__(self, config: JwtConfig) -> None:
        self.config = config

    def issue(
        self,
        user_id: str,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] = (),
        ttl_seconds: int = 3600,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        if not self.config.configured:
            raise AuthSetupError("configure auth.jwt to issue tokens")
        algorithm = self.config.algorithms[0]
        key = self.config.secret if self.config.is_hmac else self.config.private_key
        if not key:
            raise AuthSetupError(f"auth.jwt needs private_key to sign {algorithm} tokens")
        now = int(time.time())
        payload: dict[str, Any] = {
            **(claims or {}),
            "sub": str(user_id),
            "roles": sorted(roles),
            "permissions": sorted(permissions),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if self.config.audience:
            payload["aud"] = self.config.audience
        if self.config.issuer:
            payload["iss"] = self.config.issuer
        return jwt.encode(payload, key, algorithm=algorithm)


# --- passwords ----------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters


async def hash_password(password: str) -> str:
    """An argon2id hash (tens of ms of CPU: run off the event loop)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, hashed: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


# --- ctx.auth -----------------------------------------------------------------------


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
