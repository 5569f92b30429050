"""FastAPI's side of benchmarks/http_peers.py: a pydantic model, and auth as dependencies.

python fastapi_app.py PORT   # in the fastapi venv (benchmarks/peers_venv.py)
"""

from __future__ import annotations

from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from serve import ALGORITHMS, PERMISSION, SECRET, run

app = FastAPI()
bearer = HTTPBearer()


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    name: str = Field(min_length=1)
    age: int = Field(ge=0)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "Hello, world!"}


@app.post("/echo")
async def echo(person: Person) -> Person:
    return person


def claims(credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> dict[str, Any]:
    try:
        return jwt.decode(credentials.credentials, SECRET, algorithms=ALGORITHMS)
    except jwt.InvalidTokenError as error:
        raise HTTPException(401, "invalid token") from error


def has_permission(permission: str) -> Any:
    def check(user: Annotated[dict[str, Any], Depends(claims)]) -> dict[str, Any]:
        if permission not in user.get("permissions", ()):
            raise HTTPException(403, "forbidden")
        return user

    return check


@app.get("/me")
async def me(
    user: Annotated[dict[str, Any], Depends(has_permission(PERMISSION))],
) -> dict[str, str]:
    return {"user_id": user["sub"]}


if __name__ == "__main__":
    run(app)
