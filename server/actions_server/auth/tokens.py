"""Bearer tokens: verified with PyJWT against `auth.jwt`, and signed for apps that
own their users.

A verified token is cached (bounded, until its `exp`) so that a repeat costs a
dict lookup instead of the ~40 µs of a signature check.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import jwt

from ..clock import SYSTEM_CLOCK, Clock
from ..config import JwtConfig
from ..errors import ActionError, ActionsServerError
from .principal import ORG_ROLE_PREFIX, USER_KIND, Principal
from .revocation import RevocationList


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

    def __init__(self, config: JwtConfig, revoked: RevocationList | None = None) -> None:
        self.config = config
        self.revoked = revoked if revoked is not None else RevocationList()
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
        # A test kit's clock (actions_server.testing) replaces this; PyJWT reads the
        # system's time, so with another clock exp and nbf are checked here instead.
        self.clock: Clock = SYSTEM_CLOCK

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if self.clock() <= expires:
                if self.revoked and self.revoked.refuses(principal.claims):
                    raise TokenError("the token has been revoked")
                return principal
            del self._cache[token]
        principal, expires = self._decode(token)
        if self.revoked and self.revoked.refuses(principal.claims):
            raise TokenError("the token has been revoked")
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
            own_clock = self.clock is not SYSTEM_CLOCK
            options = self._options
            if own_clock:
                options = {**options, "verify_exp": False, "verify_nbf": False, "verify_iat": False}
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options=options,  # type: ignore[arg-type]
            )
            if own_clock:
                _check_times(claims, self.clock(), self.config.leeway_seconds)
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


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """What PyJWT checks of exp and nbf, against another clock than the system's."""
    if float(claims["exp"]) <= now - leeway:
        raise jwt.ExpiredSignatureError("Signature has expired")
    nbf = claims.get("nbf")
    if nbf is not None and float(nbf) > now + leeway:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")


def _expiry(claims: Mapping[str, Any], leeway: float) -> float:
    """Until when a verified token may be served from the cache."""
    return float(claims["exp"]) + leeway


class TokenIssuer:
    """Signs tokens for apps that own their users (`ctx.auth.issue_token`)."""

    def __init__(self, config: JwtConfig) -> None:
        self.config = config
        self.clock: Clock = SYSTEM_CLOCK  # a test kit's clock replaces it

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
        now = int(self.clock())
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
