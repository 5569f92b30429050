"""The pure decisions of the guards, and who the client is behind proxies."""

from __future__ import annotations

from typing import Any

import pytest

from actions_server.auth import SYSTEM, Auth, AuthContext, Principal, TokenError
from actions_server.config import AuthConfig
from actions_server.errors import ActionError
from actions_server.guards import (
    Caller,
    chosen_org,
    feature_denial,
    identity_denial,
    membership_denial,
    permission_denial,
    rate_denial,
    rate_subject,
    rate_window,
    role_denial,
)
from actions_server.http.caller import client_ip, parse_networks

AUTH = Auth(AuthConfig(roles={"admin": ("users:*",), "org:member": ("projects:read",)}))
USER = Principal(
    kind="user", user_id="u1", roles=frozenset({"admin"}), permissions=frozenset({"own:thing"})
)


def ctx(principal: Principal = USER) -> AuthContext:
    return AuthContext(AUTH, principal)


def code(denial: ActionError | None) -> tuple[int, str] | None:
    return None if denial is None else (denial.status, denial.code)


def test_identity() -> None:
    assert identity_denial(ctx(), Caller(), "caller") is None
    anonymous = identity_denial(ctx(Principal()), Caller(), "caller")
    assert code(anonymous) == (401, "unauthenticated")
    assert anonymous is not None
    assert anonymous.headers == {"WWW-Authenticate": "Bearer"}
    bad = TokenError("the token has expired")
    assert identity_denial(ctx(Principal()), Caller(token_error=bad), "caller") is bad


def test_system_passes_only_with_run_as_system() -> None:
    assert code(identity_denial(ctx(SYSTEM), Caller(), "caller")) == (401, "unauthenticated")
    assert identity_denial(ctx(SYSTEM), Caller(), "system") is None
    assert permission_denial(ctx(SYSTEM), Caller(), "anything", "system") is None
    assert code(permission_denial(ctx(SYSTEM), Caller(), "anything", "caller")) == (
        401,
        "unauthenticated",
    )


def test_permission() -> None:
    assert permission_denial(ctx(), Caller(), "users:create", "caller") is None  # admin → users:*
    assert permission_denial(ctx(), Caller(), "own:thing", "caller") is None
    denial = permission_denial(ctx(), Caller(), "billing:read", "caller")
    assert code(denial) == (403, "forbidden")
    assert denial is not None
    assert denial.message == "missing permission 'billing:read'"
    assert code(permission_denial(ctx(Principal()), Caller(), "users:create", "caller")) == (
        401,
        "unauthenticated",
    )


def test_org_role_adds_permissions_and_a_role() -> None:
    auth = ctx(Principal(kind="user", user_id="u2"))
    assert code(permission_denial(auth, Caller(), "projects:read", "caller")) == (403, "forbidden")
    auth.enter_org("o1", "member")
    assert permission_denial(auth, Caller(), "projects:read", "caller") is None
    assert role_denial(auth, Caller(), "org:member", "caller") is None
    assert code(role_denial(auth, Caller(), "admin", "caller")) == (403, "forbidden")


@pytest.mark.parametrize(
    ("header", "payload", "carried", "expected"),
    [
        ("o1", {}, None, "o1"),
        (None, {"org_id": "o2"}, None, "o2"),
        ("o1", {"org_id": "o1"}, None, "o1"),
        (None, {}, "o3", "o3"),
        ("o1", {"org_id": "o2"}, None, (400, "invalid_org")),
        (None, {}, None, (400, "org_required")),
        (None, {"org_id": ["x"]}, None, (400, "invalid_org")),
    ],
)
def test_chosen_org(
    header: str | None, payload: dict[str, Any], carried: str | None, expected: Any
) -> None:
    auth = ctx(Principal(kind="user", user_id="u", org_id=carried))
    chosen = chosen_org(Caller(org_header=header), payload, auth)
    assert (code(chosen) if isinstance(chosen, ActionError) else chosen) == expected


def test_membership_and_features() -> None:
    assert code(membership_denial("o", org_exists=False, role=None)) == (404, "org_not_found")
    assert code(membership_denial("o", org_exists=True, role=None)) == (403, "forbidden")
    assert membership_denial("o", org_exists=True, role="member") is None
    assert code(feature_denial("reports", has_it=False)) == (403, "upgrade_required")
    assert feature_denial("reports", has_it=True) is None


def test_rate_window_and_denial() -> None:
    assert rate_window(1000.0, 60) == (960.0, 20)
    assert rate_window(1019.5, 60) == (960.0, 1)
    assert rate_window(960.0, 60) == (960.0, 60)
    assert rate_denial(5, 5, 10) is None
    denial = rate_denial(6, 5, 10)
    assert code(denial) == (429, "rate_limited")
    assert denial is not None
    assert denial.headers == {"Retry-After": "10"}


def test_rate_subject_never_pools_anonymous_callers() -> None:
    anonymous = ctx(Principal())
    assert rate_subject("user", anonymous, Caller(client_ip="1.2.3.4")) == "ip:1.2.3.4"
    assert rate_subject("user", anonymous, Caller(client_ip="5.6.7.8")) == "ip:5.6.7.8"
    assert rate_subject("user", ctx(), Caller(client_ip="1.2.3.4")) == "user:u1"
    assert rate_subject("ip", ctx(), Caller(client_ip="1.2.3.4")) == "ip:1.2.3.4"
    in_org = ctx()
    in_org.enter_org("o9", "member")
    assert rate_subject("org", in_org, Caller()) == "org:o9"


PROXIES = parse_networks(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("1.2.3.4", "9.9.9.9", PROXIES, "1.2.3.4"),  # not a proxy: its header is ignored
        ("10.0.0.5", "9.9.9.9", PROXIES, "9.9.9.9"),
        ("10.0.0.5", "6.6.6.6, 9.9.9.9", PROXIES, "9.9.9.9"),  # the client can only prepend
        ("10.0.0.5", "9.9.9.9, 10.0.0.7", PROXIES, "9.9.9.9"),
        ("10.0.0.5", None, PROXIES, "10.0.0.5"),
        ("10.0.0.5", "9.9.9.9", (), "10.0.0.5"),
        ("::ffff:10.0.0.5", "9.9.9.9", PROXIES, "9.9.9.9"),  # an IPv4 peer on a dual-stack socket
    ],
)
def test_client_ip(peer: str, forwarded: str | None, trusted: Any, client: str) -> None:
    assert client_ip(peer, forwarded, trusted) == client
