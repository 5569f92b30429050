"""Bearer token verification: what is accepted, what is refused and why."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from actions_server.auth import (
    Principal,
    RolePolicy,
    TokenError,
    TokenIssuer,
    TokenVerifier,
    bearer_token,
    permits,
)
from actions_server.config import JwtConfig, load_config
from actions_server.errors import LoadError
from support.tokens import SECRET, claims, hmac_signed_with, hs256, rs256, rsa_keys, unsigned


def verifier(**options: Any) -> TokenVerifier:
    return TokenVerifier(JwtConfig(**{"secret": SECRET, "algorithms": ("HS256",), **options}))


def refused(verify: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verify.verify(token)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_token"
    return caught.value.message


def test_a_good_token_gives_its_principal() -> None:
    token = hs256(claims(roles=["admin"], permissions=["a:b"], plan="pro"))
    principal = verifier().verify(token)
    assert principal.user_id == "00000000-0000-4000-8000-000000000001"
    assert principal.roles == frozenset({"admin"})
    assert principal.permissions == frozenset({"a:b"})
    assert principal.claims["plan"] == "pro"
    assert principal.is_authenticated


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: hs256(claims(), secret="another-secret-that-is-also-long-enough-xx"),
            "the token is invalid",
        ),
        (lambda: hs256(claims(exp=int(time.time()) - 60)), "the token has expired"),
        (lambda: hs256(claims(nbf=int(time.time()) + 60)), "the token is not valid yet"),
        (lambda: hs256({"exp": int(time.time()) + 60}), "the token has no 'sub' claim"),
        (lambda: hs256(claims(roles=5)), "the token's 'roles' claim must be a list of strings"),
        (lambda: unsigned(claims()), "the token's algorithm is not accepted"),
        (lambda: "not.a.jwt", "the token is invalid"),
        (lambda: rs256(claims()), "the token's algorithm is not accepted"),
    ],
)
def test_refused_tokens(make: Any, message: str) -> None:
    assert refused(verifier(), make()) == message


def test_leeway_accepts_a_token_just_expired() -> None:
    token = hs256(claims(exp=int(time.time()) - 3))
    assert verifier(leeway_seconds=10).verify(token).user_id
    assert refused(verifier(leeway_seconds=0), token) == "the token has expired"


def test_audience_and_issuer_when_configured() -> None:
    strict = verifier(audience="api", issuer="https://id.example")
    assert strict.verify(hs256(claims(aud="api", iss="https://id.example"))).user_id
    assert (
        refused(strict, hs256(claims(aud="other", iss="https://id.example")))
        == "the token is for another audience"
    )
    assert (
        refused(strict, hs256(claims(aud="api", iss="https://evil.example")))
        == "the token is from another issuer"
    )
    assert (
        refused(strict, hs256(claims(iss="https://id.example"))) == "the token has no 'aud' claim"
    )


def test_rs256_with_a_public_key_and_no_algorithm_confusion() -> None:
    _, public = rsa_keys()
    rsa = TokenVerifier(JwtConfig(public_key=public, algorithms=("RS256",)))
    assert rsa.verify(rs256(claims())).user_id
    # The classic attack: HS256 "signed" with the server's public key as the secret.
    assert (
        refused(rsa, hmac_signed_with(public.encode(), claims()))
        == "the token's algorithm is not accepted"
    )
    assert refused(rsa, unsigned(claims())) == "the token's algorithm is not accepted"


def test_jwks_picks_the_key_by_kid() -> None:
    _, public = rsa_keys()
    jwk = json.loads(
        jwt.algorithms.RSAAlgorithm.to_jwk(
            jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(public)
        )
    )
    jwks = {"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}
    keyed = TokenVerifier(JwtConfig(jwks=jwks, algorithms=("RS256",)))
    assert keyed.verify(rs256(claims(), kid="k1")).user_id
    assert refused(keyed, rs256(claims(), kid="k2")) == "no key matches the token's kid"


def test_verified_tokens_are_cached_until_they_expire() -> None:
    verify = verifier(leeway_seconds=0)
    token = hs256(claims(exp=int(time.time()) + 2))
    first = verify.verify(token)
    assert verify.verify(token) is first  # from the cache
    time.sleep(2.2)
    assert refused(verify, token) == "the token has expired"


def test_the_cache_is_bounded() -> None:
    verify = verifier(cache_size=3)
    tokens = [hs256(claims(sub=f"user-{i}")) for i in range(5)]
    for token in tokens:
        verify.verify(token)
    assert len(verify._cache) == 3
    assert set(verify._cache) == set(tokens[2:])


def test_no_jwt_config_accepts_no_token() -> None:
    none = TokenVerifier(JwtConfig(algorithms=()))
    assert (
        refused(none, hs256(claims()))
        == "this server accepts no tokens (auth.jwt is not configured)"
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("Bearer abc", "abc"), ("bearer  abc ", "abc")],
)
def test_bearer_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "abc", ""])
def test_malformed_bearer_header(header: str) -> None:
    with pytest.raises(TokenError, match="must be 'Bearer <token>'"):
        bearer_token(header)


def test_issued_tokens_verify() -> None:
    config = JwtConfig(secret=SECRET, algorithms=("HS256",), audience="api", issuer="me")
    token = TokenIssuer(config).issue("u1", roles=["admin"], ttl_seconds=60)
    principal = TokenVerifier(config).verify(token)
    assert (principal.user_id, principal.roles) == ("u1", frozenset({"admin"}))


@pytest.mark.parametrize(
    ("granted", "needed", "ok"),
    [
        ({"users:create"}, "users:create", True),
        ({"users:create"}, "users:delete", False),
        ({"org:*"}, "org:members:manage", True),
        ({"org:*"}, "orgs", False),
        ({"*"}, "anything", True),
        (set(), "x", False),
    ],
)
def test_permits(granted: set[str], needed: str, ok: bool) -> None:
    assert permits(granted, needed) is ok


def test_role_policy_adds_role_and_org_role_permissions() -> None:
    policy = RolePolicy(
        {"admin": ["users:create"], "org:admin": ["org:*"], "org:member": ["projects:read"]}
    )
    principal = Principal(
        kind="user", user_id="u", roles=frozenset({"admin"}), permissions=frozenset({"own"})
    )
    assert policy.permissions(principal, None) == {"own", "users:create"}
    assert policy.permissions(principal, "admin") == {"own", "users:create", "org:*"}
    assert policy.permissions(principal, "member") == {"own", "users:create", "projects:read"}


def test_principal_travels_as_json() -> None:
    principal = Principal(
        kind="user", user_id="u", roles=frozenset({"b", "a"}), org_id="o", org_role="admin"
    )
    data = principal.to_json()
    assert data == {
        "kind": "user",
        "user_id": "u",
        "roles": ["a", "b"],
        "permissions": [],
        "org_id": "o",
        "org_role": "admin",
    }
    assert Principal.from_json(json.loads(json.dumps(data))) == Principal(
        kind="user",
        user_id="u",
        roles=frozenset({"a", "b"}),
        claims={"sub": "u"},
        org_id="o",
        org_role="admin",
    )


@pytest.mark.parametrize(
    ("jwt_section", "message"),
    [
        ("{secret: short}", "auth.jwt.secret is 5 bytes; HS256 needs at least 32"),
        ("{algorithms: [HS256]}", "auth.jwt: HS256 needs a secret"),
        ("{algorithms: [RS256]}", "auth.jwt: RS256 needs public_key or jwks_file"),
        (
            "{algorithms: [HS256, RS256], secret: " + "x" * 40 + "}",
            "mixes HS* with public-key algorithms",
        ),
        (
            "{algorithms: [RS256], public_key: missing.pem}",
            "auth.jwt.public_key: cannot read missing.pem",
        ),
    ],
)
def test_auth_config_problems(tmp_path: Path, jwt_section: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(f"app: a\nauth:\n  jwt: {jwt_section}\n")
    with pytest.raises(LoadError) as caught:
        load_config(tmp_path / "config.yaml", env={})
    assert [message in p.message for p in caught.value.problems] == [True]
    assert caught.value.problems[0].line is not None


def test_public_key_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(rsa_keys()[1])
    (tmp_path / "config.yaml").write_text(
        "app: a\nauth:\n  jwt: {algorithms: [RS256], public_key: key.pem}\n"
    )
    config = load_config(tmp_path / "config.yaml", env={})
    assert TokenVerifier(config.auth.jwt).verify(rs256(claims())).user_id


def test_every_algorithm_must_fit_the_public_key(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(rsa_keys()[1])
    (tmp_path / "config.yaml").write_text(
        "app: a\nauth:\n  jwt: {algorithms: [RS256, ES256], public_key: key.pem}\n"
    )
    with pytest.raises(LoadError) as caught:
        load_config(tmp_path / "config.yaml", env={})
    [problem] = caught.value.problems
    assert problem.message.startswith("auth.jwt.public_key: not a key for ES256")
