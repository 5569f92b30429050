"""The worker: claims jobs, runs them through the executor, acknowledges them.

- Claims take as many due jobs as there are free slots (`queue.concurrency`),
  in one `FOR UPDATE SKIP LOCKED` statement, highest priority and oldest first.
- A worker sleeps until a NOTIFY (sent once per committing transaction that
  queued work), a job of its own finishing while more are waiting, the next
  delayed job falling due, or the safety-net poll, whichever comes first.
- A job whose handler touched the database is marked done in the handler's own
  transaction: its effects and its completion commit together, or neither does.
  Other jobs, and failures, are acknowledged in batches; if the worker dies
  first, their leases expire and they run again (delivery is at-least-once).
- A heartbeat extends the leases of running jobs; any worker puts back the jobs
  of a worker whose leases ran out.
- On stop: no more claims; running jobs get `queue.shutdown_grace_seconds` to
  finish; the rest are cancelled (their transactions roll back) and released
  for another worker, their attempt not counted. Nothing unfinished is marked done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from ..auth import Principal
from ..config import QueueConfig
from ..db.pool import Connection, Database
from ..db.session import DbSession
from ..errors import ActionError, DatabaseUnavailable
from ..executor import Executor
from ..guards import Caller
from ..manifests.model import ActionSpec
from . import store
from .retry import gives_up, retry_delay

log = logging.getLogger("actions_server.worker")

# What a lost or overloaded database looks like from here: try again later.
DB_ERRORS = (DatabaseUnavailable, psycopg.OperationalError, PoolTimeout)

TRIGGERS = {"job": "job", "event": "event", "cron": "cron"}
ACK_DELAY_SECONDS = 0.01  # gather acknowledgements this long before writing them
ACK_BATCH = 500


class LeaseLost(ActionError):
    """Another worker holds the job now (this one's lease ran out): its work is rolled back."""

    status = 409
    code = "lease_lost"


class Worker:
    def __init__(
        self,
        executor: Executor,
        database: Database,
        config: QueueConfig,
        *,
        dsn: str,
        name: str | None = None,
    ) -> None:
        self.executor = executor
        self.database = database
        self.config = config
        self.dsn = dsn
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.running: dict[int, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._backlog = False  # the last claim filled every free slot: more may be waiting
        self._done: list[int] = []
        self._failures: list[store.Failure] = []
        self._acks_pending = asyncio.Event()
        self.processed = 0

    # --- the main loop --------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set; then shut down gracefully."""
        background = [
            asyncio.create_task(self._listen(), name="worker-listen"),
            asyncio.create_task(
                self._every(self.config.lease_seconds / 3, self._heartbeat), name="worker-heartbeat"
            ),
            asyncio.create_task(
                self._every(min(15.0, self.config.lease_seconds / 2), self._reap),
                name="worker-reap",
            ),
            asyncio.create_task(self._acknowledge(), name="worker-ack"),
        ]
        stopper = asyncio.create_task(self._on_stop(stop))
        log.info("worker %s started (concurrency %d)", self.name, self.config.concurrency)
        try:
            await self._claim_loop()
        finally:
            stopper.cancel()
            await self._shutdown()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._flush_acks()
            log.info("worker %s stopped after %d jobs", self.name, self.processed)

    async def _on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        self._wake.set()

    async def _claim_loop(self) -> None:
        poll = self.config.poll_interval_seconds
        while not self._stopping:
            self._wake.clear()  # before claiming: a NOTIFY during the claim is not lost
            free = self.config.concurrency - len(self.running)
            wait = poll
            if free > 0:
                try:
                    claimed = await self._claim(free)
                except DB_ERRORS as exc:
                    log.warning("cannot claim jobs: %s", exc)
                    claimed, wait = [], min(poll, 1.0)
                self._backlog = len(claimed) == free
                for row in claimed:
                    self._start(row)
                if self._backlog:
                    continue
                if not claimed and wait == poll:
                    wait = await self._until_next_due(poll)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        async with self._connection() as conn:
            return await store.claim(conn, self.name, limit, self.config.lease_seconds)

    async def _until_next_due(self, poll: float) -> float:
        try:
            async with self._connection() as conn:
                due = await store.next_due(conn)
        except DB_ERRORS:
            return min(poll, 1.0)
        if due is None:
            return poll
        return max(0.0, min(poll, due.timestamp() - time.time()))

    def _wake_for_more(self) -> None:
        """A slot freed up: claim again if work was left waiting and enough slots are free."""
        free = self.config.concurrency - len(self.running)
        if self._backlog and free >= max(1, self.config.concurrency // 4):
            self._wake.set()

    # --- running one job -------------------------------------------------------------

    def _start(self, row: dict[str, Any]) -> None:
        task = asyncio.create_task(self._execute(row), name=f"job-{row['id']}")
        self.running[row["id"]] = task

    async def _execute(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        try:
            action = self.executor.registry.action(row["action"])
            if action is None:
                self._fail(
                    row,
                    None,
                    ActionError(500, "unknown_action", f"no action named {row['action']!r}"),
                )
                return
            principal = Principal.from_json(row["principal"] or {})
            payload = row["payload"] if row["kind"] != "cron" else {}
            try:
                result = await self.executor.run(
                    action,
                    payload,
                    trigger=TRIGGERS[row["kind"]],
                    caller=Caller(principal=principal),
                    trace_id=row["trace_id"],
                    parent_id=row["parent_run_id"],
                    attempt=row["attempts"],
                    job_id=str(job_id),
                    completion=self._completion(job_id),
                )
            except LeaseLost:
                log.warning(
                    "job %s: lease lost; another worker has it", job_id, extra={"job_id": job_id}
                )
            except ActionError as exc:
                self._fail(row, action, exc)
            else:
                if not result.completed:
                    self._done.append(job_id)
                    self._acks_pending.set()
            self.processed += 1
        finally:
            self.running.pop(job_id, None)
            self._wake_for_more()

    def _completion(self, job_id: int) -> Callable[[DbSession], Coroutine[Any, Any, None]]:
        async def complete(session: DbSession) -> None:
            done = await store.complete(await session.connection(), self.name, [job_id])
            if not done:
                raise LeaseLost(message=f"job {job_id} is no longer held by {self.name}")

        return complete

    def _fail(self, row: dict[str, Any], action: ActionSpec | None, exc: ActionError) -> None:
        attempt = row["attempts"]
        dead = action is None or gives_up(attempt, row["max_attempts"])
        error: dict[str, Any] = {
            "code": exc.code,
            "message": exc.message,
            "status": exc.status,
            "attempt": attempt,
        }
        cause = exc.__cause__
        if cause is not None and exc.status >= 500:
            error["traceback"] = "".join(traceback.format_exception(cause))[-8000:]
        delay = 0.0 if dead or action is None else retry_delay(action.retry, attempt)
        extra = {"job_id": row["id"], "attempt": attempt, "action": row["action"]}
        if dead:
            log.error(
                "job %s is dead after %d attempts: %s", row["id"], attempt, exc.message, extra=extra
            )
        else:
            log.warning(
                "job %s failed (attempt %d), retry in %.1fs: %s",
                row["id"],
                attempt,
                delay,
                exc.message,
                extra=extra,
            )
        self._failures.append(
            store.Failure(job_id=row["id"], dead=dead, delay_seconds=delay, error=error)
        )
        self._acks_pending.set()

    # --- acknowledgements ------------------------------------------------------------

    async def _acknowledge(self) -> None:
        while True:
            await self._acks_pending.wait()
            await asyncio.sleep(ACK_DELAY_SECONDS)
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        self._acks_pending.clear()
        while self._done or self._failures:
            done, self._done = self._done[:ACK_BATCH], self._done[ACK_BATCH:]
            failures, self._failures = self._failures[:ACK_BATCH], self._failures[ACK_BATCH:]
            try:
                async with self._connection() as conn:
                    if done:
                        await store.complete(conn, self.name, done)
                    await store.fail(conn, self.name, failures)
                if any(not f.dead for f in failures):
                    self._wake.set()  # a retry is due soon: let the claimer schedule it
            except DB_ERRORS as exc:
                # Keep them: the next flush tries again (or the leases expire and
                # the jobs run again, which at-least-once delivery allows).
                log.warning("cannot acknowledge %d jobs: %s", len(done) + len(failures), exc)
                self._done[:0], self._failures[:0] = done, failures
                self._acks_pending.set()
                return

    # --- leases ---------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        ids = list(self.running)
        if ids:
            async with self._connection() as conn:
                await store.heartbeat(conn, self.name, ids, self.config.lease_seconds)

    async def _reap(self) -> None:
        async with self._connection() as conn:
            reaped = await store.reap_expired(conn)
        if reaped:
            log.warning("put back %d jobs whose worker stopped: %s", len(reaped), reaped[:20])
            self._wake.set()

    async def _every(self, seconds: float, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except DB_ERRORS as exc:
                log.warning("%s failed: %s", step.__name__.strip("_"), exc)

    # --- wake-ups -------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for new work on a connection of its own; reconnect when it drops."""
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {store.CHANNEL}")
                    delay = 0.5
                    self._wake.set()  # anything queued while we were not listening
                    async for _ in conn.notifies():
                        if self.config.concurrency > len(self.running):
                            self._wake.set()
            except psycopg.OperationalError as exc:
                log.warning("job notifications lost (%s); polling until they are back", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # --- stopping -------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping = True
        tasks = list(self.running.values())
        if tasks:
            log.info(
                "waiting up to %gs for %d running jobs",
                self.config.shutdown_grace_seconds,
                len(tasks),
            )
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_seconds)
            if pending:
                unfinished = [job_id for job_id, task in self.running.items() if task in pending]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                try:
                    async with self._connection() as conn:
                        await store.release(conn, self.name, unfinished)
                    log.warning(
                        "released %d unfinished jobs for other workers: %s",
                        len(unfinished),
                        unfinished,
                    )
                except DB_ERRORS as exc:
                    log.warning(
                        "cannot release %d jobs (their leases will expire): %s",
                        len(unfinished),
                        exc,
                    )

    def _connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        return self.database.pool.connection(timeout=self.database.acquire_timeout)
