"""`auth.jwt`: algorithms and keys that fit together, and key files read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt

from ..errors import Problem
from ..sourcemap import JsonPath, SourceDoc
from .model import JwtConfig


def key_fits(key: str, algorithms: Sequence[str], doc: SourceDoc, at: JsonPath) -> list[Problem]:
    """Every configured algorithm must accept the key, or a token naming another
    algorithm would fail inside PyJWT instead of being refused."""
    problems = []
    for algorithm in algorithms:
        try:
            jwt.get_algorithm_by_name(algorithm).prepare_key(key)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            reason = str(exc).split(".")[-1].strip() or type(exc).__name__
            problems.append(
                doc.problem(at, f"{'.'.join(map(str, at))}: not a key for {algorithm} ({reason})")
            )
    return problems


_HASH_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


def jwt_config(
    raw: Mapping[str, Any], root: Path, doc: SourceDoc
) -> tuple[JwtConfig, list[Problem]]:
    """Check that the algorithms and keys fit together, and read key files.

    HMAC and public-key algorithms are never mixed in one config: a verifier that
    accepts both is open to algorithm confusion (an RS public key used as an HS
    secret).
    """
    if not raw:
        return JwtConfig(algorithms=()), []  # no tokens are accepted or issued
    at = ("auth", "jwt")
    problems: list[Problem] = []
    algorithms = tuple(raw.get("algorithms", ("HS256",)))
    hmac = [a for a in algorithms if a.startswith("HS")]
    if hmac and len(hmac) != len(algorithms):
        problems.append(
            doc.problem(
                (*at, "algorithms"),
                "auth.jwt.algorithms mixes HS* with public-key "
                "algorithms, which invites algorithm confusion; use one family",
            )
        )
    values: dict[str, Any] = {}
    for key in ("public_key", "private_key"):
        text = raw.get(key)
        if text and not text.lstrip().startswith("-----BEGIN"):
            path = (root / text).resolve()
            try:
                text = path.read_text()
            except OSError as exc:
                problems.append(
                    doc.problem((*at, key), f"auth.jwt.{key}: cannot read {text}: {exc.strerror}")
                )
                text = None
        values[key] = text
    jwks = None
    if raw.get("jwks_file"):
        try:
            jwks = json.loads((root / raw["jwks_file"]).read_text())
        except (OSError, ValueError) as exc:
            problems.append(
                doc.problem((*at, "jwks_file"), f"auth.jwt.jwks_file: cannot read a JWKS: {exc}")
            )
    secret = raw.get("secret")
    if hmac:
        if not secret:
            problems.append(doc.problem(at, f"auth.jwt: {hmac[0]} needs a secret"))
        else:
            need = max(_HASH_BYTES[a] for a in hmac)
            if len(secret.encode()) < need:
                problems.append(
                    doc.problem(
                        (*at, "secret"),
                        f"auth.jwt.secret is {len(secret.encode())} bytes; "
                        f"{'/'.join(hmac)} needs at least {need}",
                    )
                )
            if secret.lstrip().startswith("-----BEGIN"):
                problems.append(
                    doc.problem(
                        (*at, "secret"),
                        "auth.jwt.secret looks like a PEM key; "
                        "an HMAC secret must not be a public key (algorithm confusion)",
                    )
                )
    elif not values["public_key"] and jwks is None and not problems:
        problems.append(doc.problem(at, f"auth.jwt: {algorithms[0]} needs public_key or jwks_file"))
    for key in ("public_key", "private_key"):
        if values[key] and not hmac:
            problems.extend(key_fits(values[key], algorithms, doc, (*at, key)))
    config = JwtConfig(
        secret=secret,
        public_key=values["public_key"],
        private_key=values["private_key"],
        jwks=jwks,
        algorithms=algorithms,
        audience=raw.get("audience"),
        issuer=raw.get("issuer"),
        leeway_seconds=raw.get("leeway_seconds", 10.0),
        cache_size=raw.get("cache_size", 10_000),
    )
    return config, problems
