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
import math
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import JsonbDumper
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import DatabaseUnavailable, ServerBusy

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
SIDE_POOL_SIZE = 4


async def _configure(conn: Connection) -> None:
    """Every pooled connection stores a dict as JSON (a list stays an array, for ANY())."""
    conn.adapters.register_dumper(dict, JsonbDumper)


class _Stalled(Exception):
    """The database accepted the work but did not answer in time."""


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
        options: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            # Bound the ways a network can hang a connection (ignored on Unix sockets):
            # connecting, and a peer that stops acknowledging.
            "connect_timeout": max(2, math.ceil(acquire_timeout)),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
        }
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
            configure=_configure,
        )
        # Short statements made beside the runs, which may hold every pooled
        # connection: rate-limit counters made while a run holds one (from the main
        # pool they could wait for each other), the worker's claims, heartbeats and
        # acknowledgements, cron ticks.
        self.side_pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            dsn,
            min_size=0,
            max_size=SIDE_POOL_SIZE,
            kwargs=options,
            timeout=acquire_timeout,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            open=False,
            name=f"{name}-side",
            configure=_configure,
        )
        self._down_since: float | None = None
        self._probing = False
        self._background: set[asyncio.Future[None]] = set()
        self._in_use = 0  # connections taken from the pool and not yet given back

    @property
    def is_down(self) -> bool:
        return self._down_since is not None

    async def open(self, wait_seconds: float = 10.0) -> None:
        """Open the pool, waiting up to `wait_seconds` for the database to answer."""
        await self.pool.open(wait=False)
        await self.side_pool.open(wait=False)
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
                    await self.close()
                    raise DatabaseUnavailable(
                        f"cannot connect to the database ({describe_dsn(self.dsn)}): {exc}"
                    ) from None
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.side_pool.close()
        await self.pool.close()
        for task in self._background:
            task.cancel()

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
        # A restarted server leaves every idle connection broken. The first
        # statement (BEGIN, or SELECT 1 when the run is not transactional) finds
        # that out at once (the socket is closed) and, since nothing has run
        # yet, the request simply moves on to the next connection.
        first = first or [(_PING, None)]
        for _ in range(self.pool.max_size + 1):
            try:
                conn = await self.pool.getconn(timeout=wait)
                self._in_use += 1
            except PoolTimeout:
                if self._in_use >= self.pool.max_size:  # all ours, all working: busy, not down
                    raise ServerBusy() from None
                self.mark_down("no connection within the acquire timeout")
                raise DatabaseUnavailable() from None
            try:
                await self._within(wait, self._send(conn, first), conn)
            except _Stalled:
                self.mark_down(f"no answer to the first statement within {wait:g}s")
                raise DatabaseUnavailable() from None
            except psycopg.OperationalError:
                await self.release(conn)  # the pool discards a broken connection
                continue
            except BaseException:
                await self.release(conn)  # e.g. a role that does not exist
                raise
            self.mark_up()
            return conn
        self.mark_down("every pooled connection was broken")
        raise DatabaseUnavailable()

    @staticmethod
    async def _send(conn: Connection, statements: Sequence[Statement]) -> None:
        if len(statements) == 1:
            await conn.execute(*statements[0])
            return
        async with conn.pipeline():
            for statement, params in statements:
                await conn.execute(statement, params)

    async def _within(self, seconds: float, work: Awaitable[None], conn: Connection | None) -> None:
        """Await `work` for at most `seconds`, else raise _Stalled at once.

        A server that accepts connections but never answers (frozen, or behind a
        black hole) must not hold requests: psycopg, when cancelled, spends up to
        ten seconds asking the server to cancel, so the work is left to finish
        in the background and `conn` goes back to the pool (which drops it if it
        ended up broken) when it does.
        """
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait((task,), timeout=seconds)
        except asyncio.CancelledError:
            self._abandon(task, conn)
            raise
        if done:
            task.result()
            return
        self._abandon(task, conn)
        raise _Stalled()

    def _abandon(self, task: asyncio.Future[None], conn: Connection | None) -> None:
        task.cancel()

        def release(finished: asyncio.Future[None]) -> None:
            if not finished.cancelled():
                finished.exception()  # retrieved: a broken connection is expected here
            if conn is not None:
                returning = asyncio.ensure_future(self.release(conn))
                self._background.add(returning)
                returning.add_done_callback(self._background.discard)

        task.add_done_callback(release)

    async def release(self, conn: Connection) -> None:
        self._in_use -= 1
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
        """Whether the database answers within `within` seconds (never waits longer)."""

        async def probe() -> None:
            conn = await self.acquire()
            await self.release(conn)

        try:
            await self._within(within, probe(), None)
        except ServerBusy:
            return True  # every connection is busy working: the database is there
        except (_Stalled, DatabaseUnavailable, psycopg.OperationalError):
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
