"""Connexion 3's side of benchmarks/http_peers.py: the OpenAPI spec validates and guards.

    python connexion_app.py PORT   # in the connexion venv (benchmarks/peers_venv.py)

/me's security is an oauth2 scheme whose token info function verifies the JWT
with PyJWT; Connexion then checks the operation's required scope against the
token's permissions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from connexion import AsyncApp
from connexion.exceptions import OAuthProblem
from serve import ALGORITHMS, SECRET, run


def token_info(token: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, SECRET, algorithms=ALGORITHMS)
    except jwt.InvalidTokenError as error:
        raise OAuthProblem(detail="invalid token") from error
    return {"sub": claims["sub"], "scope": claims.get("permissions", [])}


async def hello() -> dict[str, str]:
    return {"message": "Hello, world!"}


async def echo(person: dict[str, Any]) -> dict[str, Any]:
    return person


async def me(user: str) -> dict[str, str]:
    return {"user_id": user}


app = AsyncApp(__name__, specification_dir=Path(__file__).parent)
app.add_api("connexion_openapi.yaml")

if __name__ == "__main__":
    run(app)
