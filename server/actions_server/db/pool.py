"""The connection pool, and how the server behaves while the database is down.

psycopg_pool keeps the connections; this module adds what a request path needs:
- connections are autocommit, and a run opens its own transaction, so a run
  that never touches the database costs nothing and one that does pays
  exactly BEGIN … COMMIT;
- a connection that broke while idle (the server restarted) is noticed on its
  first statement and replaced, without failing the request that found it;
- while the database is known to be down, requests fail at once with 503
  instead of each waiting the full acquire timeout, and one request at a time
  probes for recovery; the first that succeeds closes the breaker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import DatabaseUnavailable

log = logging.getLogger("actions_server.db")

Connection = psycopg.AsyncConnection[dict[str, Any]]
Statement = tuple[sql.SQL | sql.Composed, Sequence[Any] | None]
_BEGIN = sql.SQL("BEGIN")
_PING = sql.SQL("SELECT 1")

# While down, one probe at a time waits this long for a connection.
PROBE_TIMEOUT_SECONDS = 0.5
# psycopg_pool backs off exponentially between reconnection attempts; giving up
# early lets the next waiting request start a fresh attempt, so recovery after an
# outage takes about a second instead of up to the last backoff delay.
RECONNECT_TIMEOUT_SECONDS = 2.0


class Database:
    """One PostgreSQL database: a pool plus the down/up state seen by requests."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        statement_timeout: float | None = None,
        name: str = "actions-server",
    ) -> None:
        self.dsn = dsn
        self.acquire_timeout = acquire_timeout
        options: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if statement_timeout is not None:
            options["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
        self.pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=options,
            timeout=acquire_timeout,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            open=False,
            name=name,
        )
        self._down_since: float | None = None
        self._probing = False

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    async def open(self, wait_seconds: float = 10.0) -> None:
        """Open the pool, waiting up to `wait_seconds` for the database to answer."""
        await self.pool.open(wait=False)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                async with self.pool.connection(
                    timeout=max(0.5, deadline - time.monotonic())
                ) as conn:
                    await conn.execute("SELECT 1")
                return
            except (PoolTimeout, psycopg.OperationalError) as exc:
                if time.monotonic() >= deadline:
                    await self.pool.close()
                    raise DatabaseUnavailable(
                        f"cannot connect to the database ({describe_dsn(self.dsn)}): {exc}"
                    ) from None
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.pool.close()

    async def acquire(self, *, begin: bool = False, setup: Sequence[Statement] = ()) -> Connection:
        """A pooled connection, in a transaction if `begin`, after `setup` ran; or 503.

        BEGIN and the setup statements (role, settings) go out in one pipeline:
        one round trip.
        """
        first: list[Statement] = [(_BEGIN, None)] if begin else []
        first += setup
        if self._down_since is not None:
            if self._probing:
                raise DatabaseUnavailable()
            self._probing = True
            try:
                return await self._acquire(PROBE_TIMEOUT_SECONDS, first or [(_PING, None)])
            finally:
                self._probing = False
        return await self._acquire(self.acquire_timeout, first)

    async def _acquire(self, wait: float, first: Sequence[Statement]) -> Connection:
        # A restarted server leaves every idle connection broken. BEGIN finds that
        # out at no extra cost (the socket is closed, it fails at once) and, since
        # nothing has run yet, the request simply moves on to the next connection.
        for _ in range(self.pool.max_size + 1):
            try:
                conn = await self.pool.getconn(timeout=wait)
            except PoolTimeout:
                self.mark_down("no connection within the acquire timeout")
                raise DatabaseUnavailable() from None
            if not first:
                return conn
            try:
                if len(first) == 1:
                    await conn.execute(*first[0])
                else:
                    async with conn.pipeline():
                        for statement, params in first:
                            await conn.execute(statement, params)
            except psycopg.OperationalError:
                await self.pool.putconn(conn)  # the pool discards a broken connection
                continue
            except BaseException:
                await self.pool.putconn(conn)  # e.g. a role that does not exist
                raise
            self.mark_up()
            return conn
        self.mark_down("every pooled connection was broken")
        raise DatabaseUnavailable()

    async def release(self, conn: Connection) -> None:
        await self.pool.putconn(conn)

    def mark_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("database unavailable: %s", reason)

    def mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("database available again after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None

    async def ping(self, within: float = 1.0) -> bool:
        """Whether the database answers within `within` seconds."""
        try:
            async with asyncio.timeout(within):
                conn = await self.acquire(begin=True)
                try:
                    await conn.execute("ROLLBACK")
                finally:
                    await self.release(conn)
        except (DatabaseUnavailable, psycopg.OperationalError, TimeoutError):
            return False
        return True


def describe_dsn(dsn: str) -> str:
    """Host, port and database of a DSN, without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an invalid database URL"
    host = info.get("host") or "local socket"
    port = info.get("port") or 5432
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"
