"""Tokens taken back before they expire.

Revoking writes a row (`actions_server.revoked_tokens` for one token by its
`jti`, `revoked_users` for every token of a user issued before a moment); every
instance keeps the rows in memory and asks for new ones every
`REFRESH_SECONDS`, so a revoked token is refused everywhere within that, and a
request never pays a round trip for the check (two set lookups). Polling, not
LISTEN: it works through PgBouncer's transaction pooling, and its cost is one
indexed query a second or two per instance.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..db.pool import Connection
from ..loops import pause

log = logging.getLogger("actions_server.auth")

REFRESH_SECONDS = 0.5


async def revoke_token(conn: Connection, jti: str, expires_at: float) -> None:
    """Refuse the token with this `jti` from now on (kept until it would expire anyway)."""
    await conn.execute(
        "INSERT INTO actions_server.revoked_tokens (jti, expires_at) "
        "VALUES (%s, to_timestamp(%s)) ON CONFLICT (jti) DO NOTHING",
        (jti, expires_at),
    )


async def revoke_user(conn: Connection, user_id: str) -> None:
    """Refuse every token of `user_id` issued before now (tokens issued later work)."""
    await conn.execute(
        "INSERT INTO actions_server.revoked_users (user_id, before) VALUES (%s, now()) "
        "ON CONFLICT (user_id) DO UPDATE SET before = now(), revoked_at = now()",
        (user_id,),
    )


async def prune(conn: Connection) -> int:
    """Forget revoked tokens that have expired anyway; how many."""
    cursor = await conn.execute(
        "DELETE FROM actions_server.revoked_tokens WHERE expires_at < now() - interval '1 hour'"
    )
    return cursor.rowcount


class RevocationList:
    """This process's copy of the revocation tables."""

    def __init__(self) -> None:
        self.jtis: set[str] = set()
        self.users: dict[str, float] = {}  # user id → tokens issued before this are refused
        self._since: datetime.datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.jtis or self.users)

    def refuses(self, claims: Mapping[str, Any]) -> bool:
        if self.jtis and claims.get("jti") in self.jtis:
            return True
        if self.users:
            before = self.users.get(str(claims.get("sub")))
            if before is not None:
                issued = claims.get("iat")
                return not isinstance(issued, int | float) or issued < before
        return False

    async def refresh(self, conn: Connection) -> None:
        """Read the rows revoked since the last refresh (all of them the first time)."""
        since = self._since or datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        cursor = await conn.execute(
            "SELECT jti, revoked_at FROM actions_server.revoked_tokens "
            "WHERE revoked_at >= %s AND expires_at > now() - interval '1 hour'",
            (since,),
        )
        newest = since
        for row in await cursor.fetchall():
            self.jtis.add(row["jti"])
            newest = max(newest, row["revoked_at"])
        cursor = await conn.execute(
            "SELECT user_id, extract(epoch FROM before) AS before, revoked_at "
            "FROM actions_server.revoked_users WHERE revoked_at >= %s",
            (since,),
        )
        for row in await cursor.fetchall():
            self.users[row["user_id"]] = float(row["before"])
            newest = max(newest, row["revoked_at"])
        # Rows committed out of order within the same instant are read again next
        # time (>=), never missed.
        self._since = newest

    async def keep_fresh(
        self, connection: Callable[[], AbstractAsyncContextManager[Connection]]
    ) -> None:
        """Refresh every REFRESH_SECONDS until cancelled; an outage is waited out."""
        while True:
            try:
                async with connection() as conn:
                    await self.refresh(conn)
            except Exception as exc:  # the database is down: tokens stay as last known
                log.debug("cannot refresh revoked tokens: %s", exc)
            await pause(REFRESH_SECONDS)

    def start(
        self, connection: Callable[[], AbstractAsyncContextManager[Connection]]
    ) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            self.keep_fresh(connection), name="revocations"
        )
