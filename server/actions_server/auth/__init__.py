"""Who is calling: principals (principal.py), permissions (policy.py), bearer
tokens (tokens.py), passwords (passwords.py) and `ctx.auth` (facade.py)."""

from .facade import Auth, AuthContext
from .passwords import hash_password, verify_password
from .policy import RolePolicy, permits
from .principal import (
    ANONYMOUS,
    ANONYMOUS_KIND,
    ORG_ROLE_PREFIX,
    SYSTEM,
    SYSTEM_KIND,
    USER_KIND,
    Principal,
    org_role_name,
)
from .tokens import AuthSetupError, TokenError, TokenIssuer, TokenVerifier, bearer_token

__all__ = [
    "ANONYMOUS",
    "ANONYMOUS_KIND",
    "ORG_ROLE_PREFIX",
    "SYSTEM",
    "SYSTEM_KIND",
    "USER_KIND",
    "Auth",
    "AuthContext",
    "AuthSetupError",
    "Principal",
    "RolePolicy",
    "TokenError",
    "TokenIssuer",
    "TokenVerifier",
    "bearer_token",
    "hash_password",
    "org_role_name",
    "permits",
    "verify_password",
]
