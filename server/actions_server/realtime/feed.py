"""The listener: one connection per process that hears about new messages and
reads them by id.

It LISTENs on the channels' NOTIFY channel (one notification per committing
transaction that published, its payload empty: messages of any size live in
the table), and on each wake-up reads every message after the cursor
(cursor.py explains why ids are not simply read in order). Reading happens on
the listening connection itself: notifications that arrive meanwhile wait in
psycopg's backlog and cause one more read. The messages go to `deliver`, the
hub's fan-out to local sockets.

When the connection drops (a restart, `pg_terminate_backend`) it reconnects
with backoff and reads from where it was: messages published during the gap
are delivered then. Connecting is bounded by `database.options` as every other
connection is. The connection says who it is in `application_name`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..db.pool import Connection
from ..loops import pause
from . import store
from .cursor import Cursor

log = logging.getLogger("actions_server.realtime")

BATCH = 1000  # messages per read
IDLE_POLL_SECONDS = 30.0  # a read without a notification, as a check of the connection
AWAITED_POLL_SECONDS = 0.5  # while ids are awaited: how soon to look for them again
MAX_BACKOFF_SECONDS = 5.0


class Feed:
    def __init__(
        self,
        dsn: str,
        options: dict[str, Any],
        deliver: Callable[[list[store.Stored]], Awaitable[None]],
        *,
        name: str,
    ) -> None:
        self.dsn = dsn
        self.options = options
        self.deliver = deliver
        self.name = name
        self.cursor: Cursor | None = None
        self.started = asyncio.Event()  # the cursor exists: messages from now on are delivered
        self.connected = False
        self.reconnects = 0

    async def run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    row_factory=dict_row,
                    application_name=f"actions-server channels {self.name}"[:63],
                    **self.options,
                )
                async with conn:
                    await store.listen(conn)
                    if self.cursor is None:
                        self.cursor = Cursor(await store.latest(conn))
                        self.started.set()
                    elif not self.connected:
                        log.info("channel messages: listening again; catching up")
                    self.connected = True
                    delay = 0.1
                    await self._catch_up(conn, self.cursor)  # published while not listening
                    await self._listen(conn, self.cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("channel messages: listener lost (%s); reconnecting", exc)
                    self.reconnects += 1
                else:
                    log.warning("channel messages: cannot listen (%s); trying again", exc)
                self.connected = False
                await pause(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _listen(self, conn: Connection, cursor: Cursor) -> None:
        while True:
            wait = AWAITED_POLL_SECONDS if cursor.awaited else IDLE_POLL_SECONDS
            async for _ in conn.notifies(timeout=wait, stop_after=1):
                pass
            await self._catch_up(conn, cursor)

    async def _catch_up(self, conn: Connection, cursor: Cursor) -> None:
        while True:
            batch = await store.read(
                conn, high=cursor.high, awaited=sorted(cursor.awaited), limit=BATCH
            )
            complete = len(batch.rows) < BATCH
            fresh = cursor.take(batch.rows, batch.xmin, batch.xmax, complete=complete)
            if fresh:
                try:
                    await self.deliver(fresh)
                except Exception:  # a bug in the fan-out must not stop the listener
                    log.exception("channel messages: delivering %d failed", len(fresh))
            if complete:
                return
