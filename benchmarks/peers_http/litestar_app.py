"""Litestar's side of benchmarks/http_peers.py: a msgspec Struct, and auth as guards.

python litestar_app.py PORT   # in the litestar venv (benchmarks/peers_venv.py)
"""

from __future__ import annotations

from typing import Annotated, Any

import jwt
import msgspec
from litestar import Litestar, Request, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from serve import ALGORITHMS, PERMISSION, SECRET, run

# msgspec has no email format: the usual pattern stands in for it.
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class Person(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    name: Annotated[str, msgspec.Meta(min_length=1)]
    age: Annotated[int, msgspec.Meta(ge=0)]


@get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello, world!"}


@post("/echo", status_code=200)
async def echo(data: Person) -> Person:
    return data


def authenticated(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException()
    try:
        connection.state.claims = jwt.decode(token, SECRET, algorithms=ALGORITHMS)
    except jwt.InvalidTokenError as error:
        raise NotAuthorizedException() from error


def has_permission(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    needed = handler.opt["permission"]
    if needed not in connection.state.claims.get("permissions", ()):
        raise PermissionDeniedException()


@get("/me", guards=[authenticated, has_permission], opt={"permission": PERMISSION})
async def me(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"user_id": request.state.claims["sub"]}


app = Litestar([hello, echo, me])

if __name__ == "__main__":
    run(app)
