"""A worker's acknowledgements: jobs done without database work, failures and
operator cancels, gathered for a moment and written in batches on the control pool.

Nothing is lost to a passing outage: a batch the database refused is kept for the
next flush (or its leases expire and the jobs run again, which at-least-once
delivery allows). Acknowledging is idempotent per claim, so writing a batch twice
(stopping while it was on its way) is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .. import loops
from ..db.pool import OUTAGE_ERRORS as DB_ERRORS
from ..db.pool import Database
from ..loops import ERROR_PAUSE_SECONDS
from . import store

log = logging.getLogger("actions_server.worker")

ACK_DELAY_SECONDS = 0.01  # gather acknowledgements this long before writing them
ACK_BATCH = 500


class Acknowledgements:
    def __init__(self, database: Database, retry_due: Callable[[], None]) -> None:
        self.database = database
        self._retry_due = retry_due  # a failed job will be due again soon
        self._done: list[store.Claim] = []
        self._failures: list[store.Failure] = []
        self._cancelled: list[store.Claim] = []  # runs stopped on an operator's request
        self._pending = asyncio.Event()

    def done(self, claim: store.Claim) -> None:
        self._done.append(claim)
        self._pending.set()

    def failed(self, failure: store.Failure) -> None:
        self._failures.append(failure)
        self._pending.set()

    def cancelled(self, claim: store.Claim) -> None:
        self._cancelled.append(claim)
        self._pending.set()

    async def keep_writing(self) -> None:
        """Write acknowledgements as they come, ACK_DELAY_SECONDS after the first."""
        while True:
            await self._pending.wait()
            await loops.pause(ACK_DELAY_SECONDS)
            if not await self.flush():
                await loops.pause(ERROR_PAUSE_SECONDS)

    async def flush(self) -> bool:
        """Write pending acknowledgements; False when the database refused them for now."""
        self._pending.clear()
        if self._cancelled:
            cancelled, self._cancelled = self._cancelled, []
            try:
                async with self.database.control() as conn:
                    await store.finish_cancelled(conn, cancelled)
            except DB_ERRORS as exc:
                log.warning("cannot mark %d jobs cancelled: %s", len(cancelled), exc)
                self._cancelled[:0] = cancelled
                self._pending.set()
                return False
            except asyncio.CancelledError:  # stopping: the last flush writes them
                self._cancelled[:0] = cancelled
                raise
        while self._done or self._failures:
            done, self._done = self._done[:ACK_BATCH], self._done[ACK_BATCH:]
            failures, self._failures = self._failures[:ACK_BATCH], self._failures[ACK_BATCH:]
            try:
                async with self.database.control() as conn:
                    if done:
                        await store.complete(conn, done)
                    await store.fail(conn, failures)
                if any(not f.dead for f in failures):
                    self._retry_due()
            except DB_ERRORS as exc:
                log.warning("cannot acknowledge %d jobs: %s", len(done) + len(failures), exc)
                self._done[:0], self._failures[:0] = done, failures
                self._pending.set()
                return False
            except asyncio.CancelledError:  # stopping: the last flush writes it
                self._done[:0], self._failures[:0] = done, failures
                raise
            except Exception:
                # Not a passing outage: retrying the same batch would fail forever.
                # Drop it; the leases expire and the jobs run again.
                log.exception("cannot acknowledge %d jobs; dropped", len(done) + len(failures))
        return True
