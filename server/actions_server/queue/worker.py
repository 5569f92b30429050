"""The worker: claims jobs, runs them through the executor, acknowledges them.

- Claims take due jobs in one `FOR UPDATE SKIP LOCKED` statement, highest
  priority and oldest first: as many as there are free slots
  (`queue.concurrency`), plus, when jobs finish faster than a claim comes back,
  a few more held ready so the slots never wait for the next claim (see Prefetch).
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
- Jobs run on a pool of their own (`queue.concurrency` connections), so a busy
  queue and busy HTTP traffic never wait for each other's connections. The
  worker's own statements (claims, heartbeats, acknowledgements) use the control
  pool, so running jobs that hold every connection cannot starve the heartbeat
  into losing their leases, and rate limits or scrapes cannot delay it either.
  No error stops its loops: each logs and tries again after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

from .. import loops, metrics
from ..auth import Principal
from ..config import QueueConfig
from ..db.pool import OUTAGE_ERRORS as DB_ERRORS
from ..db.pool import Database
from ..db.session import DbSession
from ..errors import ActionError, DatabaseUnavailable, ServerBusy, ValidationFailed, traceback_text
from ..executor import Executor
from ..guards import Caller
from ..jsonutil import storable_text
from ..loops import ERROR_PAUSE_SECONDS
from ..manifests.model import ActionSpec
from . import store
from .acks import Acknowledgements
from .prefetch import Prefetch, ReadyJobs
from .retry import gives_up, retry_delay

log = logging.getLogger("actions_server.worker")


TRIGGERS = {"job": "job", "event": "event", "cron": "cron"}
# A job that could not run for reasons not its own (database down, pool busy,
# its action missing from this deployment) comes back after this long; the
# attempt does not count.
POSTPONE_SECONDS = 5.0
UNKNOWN_ACTION_POSTPONE_SECONDS = 60.0
# A job held ready this long waits behind slow jobs rather than for one claim's round
# trip: it goes back to the queue for any worker.
HOLD_LIMIT_SECONDS = 0.5


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
        prefetch: Prefetch | None = None,
    ) -> None:
        self.executor = executor
        self.database = database
        self.config = config
        self.dsn = dsn
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.running: dict[store.Claim, asyncio.Task[None]] = {}
        self._ready = ReadyJobs()  # claimed, not started yet
        self._prefetch = prefetch or Prefetch(config.concurrency)
        self._wake = asyncio.Event()
        self._stopping = False
        self._backlog = False  # the last claim took all it asked for: more may be waiting
        self._acks = Acknowledgements(database, self._wake.set)  # a retry due: claim
        self._stop_requested: set[int] = set()  # job ids whose runs this worker cancelled
        self.processed = 0

    # --- the main loop --------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set; then shut down gracefully."""
        await self.database.open_jobs_pool(self.config.concurrency)
        background = [
            asyncio.create_task(self._listen(), name="worker-listen"),
            asyncio.create_task(
                self._every(self.config.lease_seconds / 3, self._heartbeat), name="worker-heartbeat"
            ),
            asyncio.create_task(
                self._every(min(15.0, self.config.lease_seconds / 2), self._reap),
                name="worker-reap",
            ),
            asyncio.create_task(self._acks.keep_writing(), name="worker-ack"),
            asyncio.create_task(self._give_back_long_held(), name="worker-holds"),
        ]
        stopper = asyncio.create_task(self._on_stop(stop))
        log.info("worker %s started (concurrency %d)", self.name, self.config.concurrency)
        try:
            await self._claim_loop()
        finally:
            stopper.cancel()
            await self._shutdown()
            await loops.stop(background)
            await self._acks.flush()
            log.info("worker %s stopped after %d jobs", self.name, self.processed)

    async def _on_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        self._wake.set()

    async def _claim_loop(self) -> None:
        poll = self.config.poll_interval_seconds
        while not self._stopping:
            self._wake.clear()  # before claiming: a NOTIFY during the claim is not lost
            room = self._room()
            wait = poll
            if room > 0:
                try:
                    claimed = await self._claim(room)
                except DB_ERRORS as exc:
                    log.warning("cannot claim jobs: %s", exc)
                    claimed, wait = [], min(poll, ERROR_PAUSE_SECONDS)
                except Exception:
                    log.exception("cannot claim jobs")
                    claimed, wait = [], min(poll, ERROR_PAUSE_SECONDS)
                self._backlog = len(claimed) == room
                now = time.monotonic()
                for row in claimed:
                    self._ready.add(row["id"], store.claim_order(row), row, now)
                self._start_ready()
                if self._backlog and self._room() >= self._refill_at():
                    continue
                if not claimed and wait == poll:
                    wait = await self._until_next_due(poll)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _room(self) -> int:
        """How many more jobs this worker would take now: free slots, plus the prefetch."""
        held = len(self.running) + len(self._ready)
        return self.config.concurrency + self._prefetch.size - held

    def _refill_at(self) -> int:
        """Claim again once this much room opened up (not per finished job)."""
        return max(1, (self.config.concurrency + self._prefetch.size) // 4)

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        began = time.perf_counter()
        async with self.database.control() as conn:
            claimed = await store.claim(conn, self.name, limit, self.config.lease_seconds)
        self._prefetch.claimed(time.perf_counter() - began)
        return claimed

    async def _until_next_due(self, poll: float) -> float:
        try:
            async with self.database.control() as conn:
                due = await store.next_due(conn)
        except Exception:  # the claim loop's next pass reports a lasting problem
            return min(poll, ERROR_PAUSE_SECONDS)
        if due is None:
            return poll
        return max(0.0, min(poll, due.timestamp() - time.time()))

    def _wake_for_more(self) -> None:
        """A job finished: claim again if work was left waiting and enough room opened."""
        if self._backlog and self._room() >= self._refill_at():
            self._wake.set()

    # --- running one job -------------------------------------------------------------

    def _start_ready(self) -> None:
        """Start ready jobs, in priority order, while slots are free (not once stopping)."""
        while self._ready and len(self.running) < self.config.concurrency and not self._stopping:
            row = self._ready.pop()
            metrics.observe_job_wait(max(0.0, time.time() - row["run_at"].timestamp()))
            claim = store.claim_of(row)
            task = asyncio.create_task(self._execute(row, claim), name=f"job-{claim[0]}")
            self.running[claim] = task

    def _ready_claims(self) -> list[store.Claim]:
        return [store.claim_of(row) for row in self._ready.rows()]

    async def _give_back_long_held(self) -> None:
        """Jobs held ready longer than HOLD_LIMIT_SECONDS wait behind slow ones, where
        another worker could run them: give them back (the attempt not counted), and
        hold none until jobs are quick again."""
        while True:
            await loops.pause(HOLD_LIMIT_SECONDS / 2)
            held = self._ready.held_since_before(time.monotonic() - HOLD_LIMIT_SECONDS)
            if held:
                self._prefetch.stalled(HOLD_LIMIT_SECONDS)
                claims = [store.claim_of(row) for row in held]
                await self._release(claims, "jobs held behind slow ones", logging.INFO)

    async def _execute(self, row: dict[str, Any], claim: store.Claim) -> None:
        job_id = row["id"]
        began = time.perf_counter()
        try:
            action = self.executor.registry.action(row["action"])
            if action is None:
                # Deployed without this action (a rolling update, a renamed action):
                # keep the job for a worker that has it, or for an operator to cancel.
                log.error(
                    "job %s is for action %r, which this worker does not have; "
                    "it will be tried again in %gs (cancel it if the action is gone)",
                    job_id,
                    row["action"],
                    UNKNOWN_ACTION_POSTPONE_SECONDS,
                    extra={"job_id": job_id},
                )
                error = ActionError(500, "unknown_action", f"no action named {row['action']!r}")
                self._fail(row, claim, None, error, delay=UNKNOWN_ACTION_POSTPONE_SECONDS)
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
                    completion=self._completion(claim),
                )
            except asyncio.CancelledError:
                if job_id not in self._stop_requested:
                    raise  # shutdown: the job is released for another worker
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                log.warning("job %s cancelled by an operator", job_id, extra={"job_id": job_id})
                self._acks.cancelled(claim)
            except LeaseLost:
                log.warning(
                    "job %s: lease lost; another worker has it", job_id, extra={"job_id": job_id}
                )
            except (DatabaseUnavailable, ServerBusy) as exc:
                # Not the job's fault: try again soon without using up an attempt.
                self._fail(row, claim, action, exc, delay=POSTPONE_SECONDS)
            except ValidationFailed as exc:
                # The same payload will fail the same way: no point retrying.
                self._fail(row, claim, action, exc, dead=True)
            except ActionError as exc:
                self._fail(row, claim, action, exc)
            except Exception as exc:  # the executor turns handler errors into ActionError
                log.exception("job %s: unexpected error running it", job_id)
                error = ActionError(500, "internal_error", "unexpected error running the job")
                error.__cause__ = exc
                self._fail(row, claim, action, error)
            else:
                if not result.completed:
                    self._acks.done(claim)
            self.processed += 1
        finally:
            self._prefetch.ran(time.perf_counter() - began)
            self.running.pop(claim, None)
            self._stop_requested.discard(job_id)
            self._start_ready()
            self._wake_for_more()

    def _completion(self, claim: store.Claim) -> Callable[[DbSession], Coroutine[Any, Any, None]]:
        async def complete(session: DbSession) -> None:
            done = await store.complete(await session.connection(), [claim])
            if not done:
                raise LeaseLost(message=f"job {claim.job_id} is no longer held by {self.name}")

        return complete

    def _fail(
        self,
        row: dict[str, Any],
        claim: store.Claim,
        action: ActionSpec | None,
        exc: ActionError,
        *,
        delay: float | None = None,
        dead: bool = False,
    ) -> None:
        """Record a failed attempt; `delay` postpones without counting the attempt."""
        attempt = row["attempts"]
        counts = delay is None
        dead = dead or (counts and gives_up(attempt, row["max_attempts"]))
        error: dict[str, Any] = {
            "code": exc.code,
            "message": storable_text(exc.message),
            "status": exc.status,
            "attempt": attempt,
        }
        cause = exc.__cause__
        if cause is not None and exc.status >= 500:
            error["traceback"] = storable_text(traceback_text(cause))
        if delay is None:
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
        self._acks.failed(
            store.Failure(claim=claim, dead=dead, delay_seconds=delay, error=error, counts=counts)
        )

    # --- leases ---------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        claims = [*self.running, *self._ready_claims()]  # ready jobs hold leases too
        if claims:
            async with self.database.control() as conn:
                held = await store.heartbeat(conn, claims, self.config.lease_seconds)
            lost = self._ready.keep_only(set(held))
            if lost:  # put back while this worker could not extend them: others have them
                log.warning("lost the leases of %d jobs held ready; not running them", len(lost))
            for job_id, cancel in held.items():
                if cancel:  # a cancel whose NOTIFY this worker missed
                    self.stop_job(job_id)

    def stop_job(self, job_id: int) -> bool:
        """Cancel the run of `job_id` if this worker has it (an operator asked);
        the handler sees CancelledError at its next await. Whether it was here."""
        row = self._ready.remove(job_id)
        if row is not None:  # not started: it never will be
            log.warning("job %s cancelled by an operator", job_id, extra={"job_id": job_id})
            self._acks.cancelled(store.claim_of(row))
            return True
        for claim, task in self.running.items():
            if claim.job_id == job_id:
                if job_id not in self._stop_requested:
                    self._stop_requested.add(job_id)
                    task.cancel()
                return True
        return False

    async def _reap(self) -> None:
        async with self.database.control() as conn:
            reaped = await store.reap_expired(conn)
        if reaped:
            log.warning("put back %d jobs whose worker stopped: %s", len(reaped), reaped[:20])
            self._wake.set()

    async def _every(self, seconds: float, step: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            await loops.pause(seconds)
            try:
                await step()
            except DB_ERRORS as exc:
                log.warning("%s failed: %s", step.__name__.strip("_"), exc)
            except Exception:
                log.exception("%s failed", step.__name__.strip("_"))

    # --- wake-ups -------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for new work on a connection of its own; reconnect when it drops."""
        delay = 0.5
        while True:
            try:
                # Bounded like every other connection: a black-holed server must
                # not hold the listener forever (polling covers the gap meanwhile).
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, **self.database.options
                )
                async with conn:
                    await store.listen(conn)
                    delay = 0.5
                    self._wake.set()  # anything queued while we were not listening
                    async for notify in conn.notifies():
                        if notify.payload.startswith(store.CANCEL_PREFIX):
                            self.stop_job(int(notify.payload.removeprefix(store.CANCEL_PREFIX)))
                        elif self._room() > 0:
                            self._wake.set()
                        else:  # claim once room opens up (_wake_for_more)
                            self._backlog = True
            except Exception as exc:
                log.warning("job notifications lost (%s); polling until they are back", exc)
                await loops.pause(delay)
                delay = min(delay * 2, 10.0)

    # --- stopping -------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping = True
        ready, self._ready = self._ready_claims(), ReadyJobs()
        await self._release(ready, "jobs it had not started")
        tasks = list(self.running.values())
        if tasks:
            log.info(
                "waiting up to %gs for %d running jobs",
                self.config.shutdown_grace_seconds,
                len(tasks),
            )
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_seconds)
            if pending:
                unfinished = [claim for claim, task in self.running.items() if task in pending]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await self._release(unfinished, "unfinished jobs")

    async def _release(
        self, claims: list[store.Claim], what: str, level: int = logging.WARNING
    ) -> None:
        """Give jobs back for other workers, their attempt not counted."""
        if not claims:
            return
        try:
            async with self.database.control() as conn:
                await store.release(conn, claims)
            log.log(
                level,
                "released %d %s for other workers: %s",
                len(claims),
                what,
                [claim.job_id for claim in claims],
            )
        except Exception as exc:
            log.warning("cannot release %d jobs (their leases will expire): %s", len(claims), exc)
