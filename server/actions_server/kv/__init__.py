"""`ctx.kv`: a key-value store with TTLs, on PostgreSQL (default) or Redis.

Every backend implements `KV` and passes the same contract tests. Values are
any JSON value. Keys are strings of 1 to 512 characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..errors import ActionsServerError

MAX_KEY_LENGTH = 512


class KVError(ActionsServerError):
    """A KV call that cannot be done: a bad key, incr on a non-number."""


class KV(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None: ...
    async def delete(self, key: str) -> bool: ...
    async def exists(self, key: str) -> bool: ...
    async def incr(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add `by` atomically (from 0 when missing or expired); the new value.

        `ttl` applies only when this call creates the key; an existing key keeps its
        expiry or lack of one. A value that is not a whole number raises KVError.
        """

    async def ttl(self, key: str) -> float | None: ...
    async def keys(self, prefix: str = "", limit: int = 1000) -> list[str]:
        """Up to `limit` live keys starting with `prefix`, in no promised order."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]: ...
    async def set_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None: ...


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise KVError(f"a KV key is a non-empty string, not {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise KVError(f"a KV key is at most {MAX_KEY_LENGTH} characters ({len(key)} given)")
    return key


def check_ttl(ttl: float | None) -> float | None:
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
        raise KVError(f"ttl is a number of seconds > 0, not {ttl!r}")
    return ttl
