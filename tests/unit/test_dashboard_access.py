"""The dashboard's CSRF key: the same in every process of one deployment."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from actions_server.auth import Auth
from actions_server.config import load_config
from actions_server.dashboard.access import DashboardAccess
from support.tokens import rsa_keys


def access_with_public_key(tmp_path: Path, pem: str, algorithm: str = "RS256") -> DashboardAccess:
    (tmp_path / "public.pem").write_text(pem)
    (tmp_path / "config.yaml").write_text(
        f"app: a\nauth: {{jwt: {{algorithms: [{algorithm}], public_key: public.pem}}}}\n"
    )
    config = load_config(tmp_path / "config.yaml", env={})
    return DashboardAccess(config, Auth(config.auth))


def test_two_processes_with_one_public_key_agree_on_csrf_tokens(tmp_path: Path) -> None:
    _, public = rsa_keys()
    first = access_with_public_key(tmp_path, public)
    second = access_with_public_key(tmp_path, public)
    assert first.csrf("a-token") == second.csrf("a-token")
    assert second.csrf_ok("a-token", first.csrf("a-token"))
    assert not second.csrf_ok("another-token", first.csrf("a-token"))


def test_another_key_gives_other_csrf_tokens(tmp_path: Path) -> None:
    _, public = rsa_keys()
    first = access_with_public_key(tmp_path, public)
    es256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = es256.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    other = access_with_public_key(tmp_path, pem, "ES256")
    assert first.csrf("a-token") != other.csrf("a-token")
