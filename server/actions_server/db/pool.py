"""The connection pools, and how runs behave while the database is down.

psycopg_pool keeps the connections; this module adds what a request path needs:
- connections are autocommit, and a run opens its own transaction, so a run
  that never touches the database costs nothing and one that does pays
  exactly BEGIN … COMMIT;
- a connection that broke while idle (the server restarted) is noticed on its
  first statement and replaced, without failing the request that found it;
- while the database is known to be down (db/health.py's breaker), runs fail at
  once with 503; a refused connection opens the breaker at once, waking runs
  already waiting for a connection, and the first success closes it.

Pools, so that no kind of work waits behind another (each at most as large as
its setting, and empty until used):
- `pool`: HTTP and CLI runs (`database.pool.max`);
- `jobs_pool`: runs of jobs, events and cron ticks, opened by a worker
  (`queue.concurrency`): a busy queue never takes a request's connection;
- `control`: the worker's claims, heartbeats and acknowledgements, cron ticks and
  maintenance (CONTROL_POOL_SIZE): never behind rate limits or scrapes;
- `detached`: short statements beside runs: rate-limit counters (made while a
  run holds a connection; from the run pool they could wait for each other),
  `/metrics`, the dashboard (DETACHED_POOL_SIZE).
Readiness has a connection of its own (health.Readiness).

Through a transaction pooler (`database.transaction_pooling`, PgBouncer's
pool_mode=transaction) consecutive transactions of one client connection may
run on different server connections, and a server connection passes from one
client to another: nothing may rely on session state. So psycopg never prepares
statements on the server (`prepare_threshold=None`), the statement timeout is
sent as `SET LOCAL` with each run's BEGIN rather than as a startup option (which
PgBouncer refuses), and runs set their role and settings only transaction-locally
(db/session.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import DatabaseUnavailable, ServerBusy
from .adapters import configure
from .dsn import describe_dsn
from .health import Breaker, Readiness
from .statements import (
    BEGIN,
    PING,
    Statement,
    StatementText,
    quiet,
    send,
    send_together,
    timeout_statement,
    together,
    without_text,
)

log = logging.getLogger("actions_server.db")

T = TypeVar("T")

Connection = psycopg.AsyncConnection[dict[str, Any]]
Cursor = psycopg.AsyncCursor[dict[str, Any]]
Query = str | sql.Composed | sql.SQL

# What a lost or overloaded database looks like to background loops: try again later.
OUTAGE_ERRORS = (DatabaseUnavailable, psycopg.OperationalError, PoolTimeout)

CONTROL_POOL_SIZE = 3
DETACHED_POOL_SIZE = 4
# A pool gives up on a refused connection at once (after one immediate retry)
# and tells the breaker, whose prober then retries; the pool's own reconnection
# would back off for seconds, refusing traffic after the database is back.
RECONNECT_TIMEOUT_SECONDS = 0.0


class FirstStatementFailed(Exception):
    """The run's first statement failed (`acquire_with`); the connection is the run's."""

    def __init__(self, conn: Connection, error: psycopg.Error) -> None:
        super().__init__(str(error))
        self.conn = conn
        self.error = error


class Database:
    """One PostgreSQL database: its pools plus the down/up state seen by runs."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        statement_timeout: float | None = None,
        name: str = "actions-server",
        transaction_pooling: bool = False,
    ) -> None:
        self.dsn = dsn
        self.name = name
        self.transaction_pooling = transaction_pooling
        self.acquire_timeout = acquire_timeout
        self.options: dict[str, Any] = {
            # Bound the ways a network can hang a connection (ignored on Unix sockets):
            # connecting, and a peer that stops acknowledging.
            "connect_timeout": max(2, math.ceil(acquire_timeout)),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "tcp_user_timeout": 30_000,
        }
        # Statements a transactional run sends after BEGIN, before its own setup.
        self.run_setup: tuple[Statement, ...] = ()
        run_options = dict(self.options)
        if transaction_pooling:
            self.options["prepare_threshold"] = None
            run_options["prepare_threshold"] = None
            if statement_timeout is not None:
                self.run_setup = (timeout_statement(statement_timeout),)
        elif statement_timeout is not None:
            run_options["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
        self._run_options = run_options
        self.breaker = Breaker(dsn, self.options)
        self.readiness = Readiness(dsn, self.options)
        self.pool = self._pool("runs", min_size, max_size, run_options)
        self.jobs_pool: AsyncConnectionPool[Connection] | None = None
        self.control_pool = self._pool("control", 0, CONTROL_POOL_SIZE, self.options)
        self.detached_pool = self._pool("detached", 0, DETACHED_POOL_SIZE, self.options)
        self._background: set[asyncio.Future[None]] = set()
        # Connections whose work was abandoned: they go back when that work ends.
        self._abandoned: set[Connection] = set()
        # Runs waiting for a connection, and those of them _wake_waiters cancelled.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._woken: set[asyncio.Task[Any]] = set()
        self.breaker.on_open = self._wake_waiters
        # Connections taken from each run pool and not yet given back.
        self._in_use: dict[int, int] = {id(self.pool): 0}

    def _pool(
        self, role: str, min_size: int, max_size: int, options: dict[str, Any]
    ) -> AsyncConnectionPool[Connection]:
        return AsyncConnectionPool(
            self.dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "row_factory": dict_row, **options},
            timeout=self.acquire_timeout,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            reconnect_failed=self._refused,
            open=False,
            name=f"{self.name}-{role}",
            configure=configure,
        )

    def _refused(self, pool: AsyncConnectionPool[Connection]) -> None:
        self.mark_down(f"pool {pool.name} cannot connect")

    @property
    def is_down(self) -> bool:
        return self.breaker.is_open

    async def open(self, wait_seconds: float = 10.0) -> None:
        """Open the pools, waiting up to `wait_seconds` for the database to answer."""
        await self.pool.open(wait=False)
        await self.control_pool.open(wait=False)
        await self.detached_pool.open(wait=False)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                async with self.pool.connection(
                    timeout=max(0.5, deadline - time.monotonic())
                ) as conn:
                    await conn.execute("SELECT 1")
                self.mark_up()
                return
            except (PoolTimeout, psycopg.OperationalError) as exc:
                if time.monotonic() >= deadline:
                    await self.close()
                    raise DatabaseUnavailable(
                        f"cannot connect to the database ({describe_dsn(self.dsn)}): {exc}"
                    ) from None
                await asyncio.sleep(0.2)

    async def open_jobs_pool(self, max_size: int) -> None:
        """The pool the worker's runs take connections from (`queue.concurrency` of them)."""
        if self.jobs_pool is None:
            pool = self._pool("jobs", 0, max_size, self._run_options)
            await pool.open(wait=False)
            self._in_use[id(pool)] = 0
            self.jobs_pool = pool

    async def close(self) -> None:
        await self.breaker.stop()
        await self.readiness.close()
        for pool in (self.jobs_pool, self.control_pool, self.detached_pool, self.pool):
            if pool is not None:
                await pool.close()
        for task in self._background:
            task.cancel()

    def control(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for the worker's and the scheduler's own statements."""
        return self.control_pool.connection(timeout=self.acquire_timeout)

    def detached(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for a short statement beside the runs (rate limits, metrics)."""
        return self.detached_pool.connection(timeout=self.acquire_timeout)

    def run_pool(self, *, jobs: bool = False) -> AsyncConnectionPool[Connection]:
        return self.jobs_pool if jobs and self.jobs_pool is not None else self.pool

    async def acquire(
        self, *, begin: bool = False, setup: Sequence[Statement] = (), jobs: bool = False
    ) -> Connection:
        """A pooled connection, in a transaction if `begin`, after `setup` ran; or 503.

        BEGIN and the setup statements (role, settings) go out as one text: one
        round trip; with neither, nothing is sent. `jobs`: from the worker's pool,
        when it has one.
        """
        opening = self._opening_statements(begin, setup)
        conn, _ = await self._acquire(self.run_pool(jobs=jobs), opening)
        return conn

    async def acquire_with(
        self,
        setup: Sequence[Statement],
        query: Query,
        params: Sequence[Any] | Mapping[str, Any] | None,
        *,
        begin: bool = True,
        jobs: bool = False,
    ) -> tuple[Connection, Cursor | None]:
        """`acquire`, and the cursor of the run's first statement, sent with BEGIN
        and `setup` as one text: one round trip for all of them; None when the
        statement could not go with them and is the caller's to send.

        That text is the simple query protocol's, so the statement's values are
        bound on the client as literals that psycopg quotes, as `send` binds the
        settings'. Measured, one text costs about a quarter less CPU than BEGIN
        and the statement apart, and a psycopg pipeline more than either
        (benchmarks/db_path.py, docs/performance.md). With nothing to send before
        it (a run outside a transaction, without settings) the statement goes
        alone, as psycopg sends it. It is left to the caller when the statement has no values (its
        text may hold several statements), a float (a literal would be numeric)
        or a value only server-side binding takes (`%b`); when the run is outside
        a transaction but has settings (in one text, a failed statement would
        undo them); and when the connection may have broken in the pool.

        The statement is sent once. Any error it meets, a lost connection too
        (it may have run), is raised as FirstStatementFailed with the
        connection, the run's now, to roll back.
        """
        pool = self.run_pool(jobs=jobs)
        return await self._acquire(pool, self._opening_statements(begin, setup), (query, params))

    def _opening_statements(self, begin: bool, setup: Sequence[Statement]) -> list[Statement]:
        """What a run sends before its own first statement: BEGIN and the database's
        run setup when it has a transaction, then its own `setup`."""
        first: list[Statement] = [(BEGIN, None), *self.run_setup] if begin else []
        return first + list(setup)

    async def _acquire(
        self,
        pool: AsyncConnectionPool[Connection],
        first: Sequence[Statement],
        statement: StatementText | None = None,
    ) -> tuple[Connection, Cursor | None]:
        """A connection that ran `first`, then the run's first `statement` (whose
        cursor comes back), together in one round trip when they can be.

        A restarted server leaves every idle connection broken. A connection on
        which something arrived while it sat in the pool (the server's goodbye)
        sends `first` on its own, or SELECT 1 when `first` is empty: that finds a
        broken connection out at once and, since nothing has run yet, the
        request moves on to the next connection. A quiet one sends `first` with
        the statement, or nothing when there is neither.
        """
        wait = self.acquire_timeout
        for _ in range(pool.max_size + 1):
            conn = await self._getconn(pool, wait)
            if quiet(conn):
                if statement is None and not first:
                    return conn, None
                if statement is not None:
                    text = together(conn, first, statement)
                    if text is not None:
                        return conn, await self._send_once(conn, pool, first, text)
            try:
                await self._within(wait, send(conn, first or [(PING, None)]), conn, pool)
            except psycopg.Error as exc:
                await self.release(conn, pool)  # the pool discards a broken connection
                if isinstance(exc, psycopg.OperationalError):
                    continue
                raise  # e.g. a role that does not exist
            except BaseException:
                if conn not in self._abandoned:  # _within gives it back when its work ends
                    await self.release(conn, pool)
                raise
            self.mark_up()
            return conn, None
        self.mark_down("every pooled connection was broken")
        raise DatabaseUnavailable()

    async def _send_once(
        self,
        conn: Connection,
        pool: AsyncConnectionPool[Connection],
        first: Sequence[Statement],
        text: sql.SQL | StatementText,
    ) -> Cursor:
        """The cursor of the run's first statement, sent with `first` as one text,
        or alone (`text` is then the statement itself). Slow is not stalled:
        past the acquire timeout it is waited for while the server answers its
        readiness check."""
        try:
            cursor = await self._within(
                self.acquire_timeout,
                send_together(conn, len(first), text),
                conn,
                pool,
                may_be_slow=True,
            )
        except psycopg.Error as exc:
            raise FirstStatementFailed(conn, without_text(exc)) from exc
        except BaseException:
            if conn not in self._abandoned:  # _within gives it back when its work ends
                await self.release(conn, pool)
            raise
        self.mark_up()
        return cursor

    async def _getconn(self, pool: AsyncConnectionPool[Connection], wait: float) -> Connection:
        """A connection from `pool`; 503 as soon as the breaker opens while waiting,
        ServerBusy when every connection is in use for the whole wait."""
        if self.breaker.is_open:  # e.g. opened by the broken connection just given back
            raise DatabaseUnavailable()
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            conn = await pool.getconn(timeout=wait)
        except asyncio.CancelledError:
            if task not in self._woken:
                raise
            # Cancelled by _wake_waiters: the breaker opened while this run waited
            # (psycopg_pool takes back a connection it was being handed).
            self._woken.discard(task)
            task.uncancel()
            raise DatabaseUnavailable() from None
        except PoolTimeout:
            if self._in_use[id(pool)] >= pool.max_size:  # all ours, all working: busy
                raise ServerBusy() from None
            self.mark_down("no connection within the acquire timeout")
            raise DatabaseUnavailable() from None
        finally:
            self._waiting.discard(task)
        self._in_use[id(pool)] += 1
        return conn

    def _wake_waiters(self) -> None:
        """The breaker opened: runs waiting for a connection answer 503 now."""
        for task in self._waiting:
            self._woken.add(task)
            task.cancel()

    async def _within(
        self,
        seconds: float,
        work: Awaitable[T],
        conn: Connection,
        pool: AsyncConnectionPool[Connection],
        *,
        may_be_slow: bool = False,
    ) -> T:
        """Await `work`; if it has not ended within `seconds`, mark the database down
        and raise DatabaseUnavailable at once (`may_be_slow`: unless the server
        answers its readiness check; then the work is slow, not stalled, and is
        awaited to its end).

        A server that accepts connections but never answers (frozen, or behind a
        black hole) must not hold requests: psycopg, when cancelled, spends up to
        ten seconds asking the server to cancel, so the work is left to finish
        in the background and `conn` goes back to the pool (which drops it if it
        ended up broken) when it does. (One task, one future and one timer: this
        runs once per run that touches the database, where asyncio.wait and
        shield cost a few percent of a request.)
        """
        loop = asyncio.get_running_loop()
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        task.add_done_callback(wake)
        timer = loop.call_later(seconds, wake)
        try:
            await waiter
            if not task.done() and may_be_slow and await self._answers():
                await asyncio.wait((task,))  # a cancel here leaves `task` to _abandon
        except asyncio.CancelledError:
            if not task.done():
                self._abandon(task, conn, pool)
            raise
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
        if not task.done():
            self._abandon(task, conn, pool)
            self.mark_down(f"no answer to the first statement within {seconds:g}s")
            raise DatabaseUnavailable()
        return task.result()

    async def _answers(self) -> bool:
        """The readiness check, for a run that waits: False if closing cut it short."""
        try:
            return await self.ready()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the run itself was cancelled
            return False

    def _abandon(
        self, task: asyncio.Future[Any], conn: Connection, pool: AsyncConnectionPool[Connection]
    ) -> None:
        task.cancel()
        self._abandoned.add(conn)  # given back below, once: the caller must not

        def release(finished: asyncio.Future[Any]) -> None:
            if not finished.cancelled():
                finished.exception()  # retrieved: a broken connection is expected here
            self._abandoned.discard(conn)
            returning = asyncio.ensure_future(self.release(conn, pool))
            self._background.add(returning)
            returning.add_done_callback(self._background.discard)

        task.add_done_callback(release)

    async def release(
        self, conn: Connection, pool: AsyncConnectionPool[Connection] | None = None
    ) -> None:
        pool = pool or self.pool
        self._in_use[id(pool)] -= 1
        await pool.putconn(conn)

    def mark_down(self, reason: str) -> None:
        self.breaker.open(reason)

    def mark_up(self) -> None:
        self.breaker.close()

    async def ready(self, within: float = 1.0) -> bool:
        """Whether the database answers within `within` seconds, on readiness's own
        connection: a pool that is busy working is ready."""
        return await self.readiness.check(within)
