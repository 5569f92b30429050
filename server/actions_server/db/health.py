"""Whether the database is there: the circuit breaker runs consult, and readiness.

The breaker opens the moment the database is known to be unreachable (a
connection refused, every pooled connection broken, a first statement that
gets no answer) and closes on the first success, a run's or the prober's:
while it is open, runs fail at once with 503 instead of each waiting out the
acquire timeout, and one background prober connects directly (not through a
pool, whose reconnection backs off for seconds) every `PROBE_INTERVAL_SECONDS`,
so healthy traffic is refused for at most about that long after the database
is back.

Readiness (`/readyz`) asks the database on a connection of its own, so a pool
that is busy working, which is a ready server, never reads as not ready, and a
probe never waits behind runs for a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import psycopg

from .. import loops

log = logging.getLogger("actions_server.db")

# Between the prober's attempts while the database is down. No backoff: an attempt
# at a server that is down costs a refused connection, and every interval added is
# healthy traffic refused after it is back.
PROBE_INTERVAL_SECONDS = 0.1
PROBE_TIMEOUT_SECONDS = 2.0  # for one attempt: connect and SELECT 1


async def answers(dsn: str, options: Mapping[str, Any], within: float) -> bool:
    """Whether a new connection to `dsn` answers SELECT 1 within `within` seconds."""

    async def select() -> None:
        conn = await psycopg.AsyncConnection.connect(dsn, **options)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    return await finishes(select(), within)


async def finishes(work: Coroutine[Any, Any, None], within: float) -> bool:
    """Whether `work` completes without error within `within` seconds.

    Past the deadline the work is cancelled and left to end in the background:
    psycopg, when cancelled mid-statement, asks the server to cancel and may
    wait seconds for a frozen one, which a health check must not.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_retrieve)
        return False
    return task.exception() is None


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # an error here is the expected end of abandoned work


class Breaker:
    """Open (the database is down) or closed; the prober closes it."""

    def __init__(self, dsn: str, options: Mapping[str, Any]) -> None:
        self._dsn = dsn
        self._options = {**options, "connect_timeout": int(PROBE_TIMEOUT_SECONDS)}
        self._down_since: float | None = None
        self._prober: asyncio.Task[None] | None = None
        self.on_open: Callable[[], None] = lambda: None  # told when the breaker opens

    @property
    def is_open(self) -> bool:
        return self._down_since is not None

    def open(self, reason: str) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        log.warning("database unavailable: %s", reason)
        self.on_open()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe with
            self._prober = asyncio.get_running_loop().create_task(
                self._probe(), name="database-prober"
            )

    def close(self) -> None:
        if self._down_since is None:
            return
        log.warning("database available again after %.1fs", time.monotonic() - self._down_since)
        self._down_since = None
        prober, self._prober = self._prober, None
        if prober is not None and prober is not asyncio.current_task():
            prober.cancel()

    async def _probe(self) -> None:
        while self._down_since is not None:
            await loops.pause(PROBE_INTERVAL_SECONDS)
            if await answers(self._dsn, self._options, PROBE_TIMEOUT_SECONDS):
                self.close()
                return

    async def stop(self) -> None:
        prober, self._prober = self._prober, None
        if prober is not None:
            await loops.stop(prober)


class Readiness:
    """`/readyz`'s question, asked on one connection kept for it alone.

    Concurrent probes share one answer rather than queueing on the connection.
    """

    def __init__(self, dsn: str, options: Mapping[str, Any]) -> None:
        self._dsn = dsn
        self._options = {**options, "connect_timeout": int(PROBE_TIMEOUT_SECONDS)}
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._asking: asyncio.Future[bool] | None = None

    async def check(self, within: float = 1.0) -> bool:
        """Whether the database answers within `within` seconds."""
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._ask(within))
            self._asking.add_done_callback(self._forget)
        return await asyncio.shield(self._asking)

    def _forget(self, _: asyncio.Future[bool]) -> None:
        self._asking = None

    async def _ask(self, within: float) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            conn = None

        async def select() -> None:
            nonlocal conn
            try:
                if conn is None:
                    conn = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, **self._options
                    )
                await conn.execute("SELECT 1")
            except BaseException:
                if conn is not None:  # closed by this task, whenever it gets here
                    await conn.close()
                raise

        if await finishes(select(), within):
            self._conn = conn
            return True
        self._conn = None  # the next check starts on a new connection
        return False

    async def close(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
