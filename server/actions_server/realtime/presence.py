"""Presence: who is in which channel, across instances.

Each instance registers itself (`channel_instances`) and says it is alive every
`realtime.presence_heartbeat_seconds`; each socket's join of a presence channel
is a row of `channel_presence`. A change is written together with a
`presence_diff` message in one transaction, so every instance's sockets in the
channel hear of it through the same stream as messages. At every heartbeat an
instance also reaps the instances silent for `realtime.presence_timeout_seconds`
(killed, or cut off): their rows go, and their leaves are published. An
instance that finds itself reaped (it was cut off, not dead) registers again
and re-publishes the presences it holds.

Leaves are batched: a load balancer restart closes thousands of sockets at
once, and they leave in a few statements rather than thousands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..db.pool import OUTAGE_ERRORS, Connection, Database
from ..jsonutil import dumps
from ..loops import ERROR_PAUSE_SECONDS, pause
from . import protocol, store

log = logging.getLogger("actions_server.realtime")

LEAVE_DELAY_SECONDS = 0.02  # gather leaves this long before writing them


def diff_messages(
    joins: Sequence[store.Presence], leaves: Sequence[store.Presence]
) -> list[store.Outgoing]:
    """One presence_diff message per channel touched."""
    by_channel = protocol.diffs(
        ((p.channel, p.key, p.meta) for p in joins), ((p.channel, p.key, p.meta) for p in leaves)
    )
    return [
        store.Outgoing(
            channel=channel, event=None, payload=dumps(diff).decode(), kind=store.PRESENCE
        )
        for channel, diff in by_channel.items()
    ]


class PresenceTracker:
    def __init__(
        self,
        database: Database,
        instance: str,
        *,
        heartbeat_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self.database = database
        self.instance = instance
        self.heartbeat_seconds = heartbeat_seconds
        self.timeout_seconds = timeout_seconds
        self.local: dict[tuple[str, str], store.Presence] = {}  # what this instance holds
        self._leaving: dict[tuple[str, str], None] = {}
        self._leaves_pending = asyncio.Event()
        self.registered = False

    # --- joins and leaves ---------------------------------------------------------------

    async def track(
        self, channel: str, ref: str, key: str, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Add one presence (a socket joined `channel`) and publish it; the channel's state."""
        entry = store.Presence(channel, ref, key, meta)
        self.local[(channel, ref)] = entry
        try:
            async with self.database.detached() as conn, conn.transaction():
                added = await store.track(conn, self.instance, [entry])
                await store.publish(conn, diff_messages(added, []))
                return protocol.state_of(await store.presence(conn, channel))
        except BaseException:
            # Cancelled (the socket closed) or failed, perhaps after the commit:
            # a leave for a row that is not there is harmless.
            self.untrack(channel, ref)
            raise

    def untrack(self, channel: str, ref: str) -> None:
        """Remove one presence, in the next batch of leaves."""
        if self.local.pop((channel, ref), None) is not None:
            self._leaving[(channel, ref)] = None
            self._leaves_pending.set()

    async def write_leaves(self) -> None:
        while True:
            await self._leaves_pending.wait()
            await pause(LEAVE_DELAY_SECONDS)
            if not await self._flush_leaves():
                await pause(ERROR_PAUSE_SECONDS)

    async def _flush_leaves(self) -> bool:
        self._leaves_pending.clear()
        refs, self._leaving = list(self._leaving), {}
        if not refs:
            return True
        try:
            async with self.database.detached() as conn, conn.transaction():
                removed = await store.untrack(conn, refs)
                await store.publish(conn, diff_messages([], removed))
        except OUTAGE_ERRORS as exc:
            # Kept for the next try; should this instance be reaped meanwhile, the
            # reaper removes them anyway.
            log.warning("cannot record %d presence leaves: %s", len(refs), exc)
            self._leaving.update(dict.fromkeys(refs))
            self._leaves_pending.set()
            return False
        return True

    # --- being alive, and noticing who is not -------------------------------------------

    async def register(self) -> None:
        async with self.database.detached() as conn:
            await store.register(conn, self.instance)
        self.registered = True

    async def heartbeat(self) -> None:
        """Say this instance is alive (registering again if it was reaped), then reap
        the silent ones; repeats every `heartbeat_seconds`."""
        while True:
            started = time.monotonic()
            try:
                async with self.database.detached() as conn:
                    await self._beat(conn)
                    async with conn.transaction():
                        removed = await store.reap(conn, self.timeout_seconds)
                        await store.publish(conn, diff_messages([], removed))
                if removed:
                    log.info("presence: removed %d entries of instances gone silent", len(removed))
            except OUTAGE_ERRORS as exc:
                log.warning("presence heartbeat failed: %s", exc)
            except Exception:
                log.exception("presence heartbeat failed")
            await pause(max(0.0, self.heartbeat_seconds - (time.monotonic() - started)))

    async def _beat(self, conn: Connection) -> None:
        if self.registered and await store.alive(conn, self.instance):
            return
        async with conn.transaction():
            await store.register(conn, self.instance)
            added = await store.track(conn, self.instance, list(self.local.values()))
            await store.publish(conn, diff_messages(added, []))
        if self.registered:
            log.warning(
                "presence: this instance had been declared gone; registered again "
                "with %d presences",
                len(added),
            )
        self.registered = True

    async def close(self) -> None:
        """Leave every presence this instance holds and unregister it (shutting down)."""
        refs = [*self._leaving, *self.local]
        self._leaving.clear()
        self.local.clear()
        try:
            async with self.database.detached() as conn, conn.transaction():
                removed = await store.untrack(conn, refs)
                await store.publish(conn, diff_messages([], removed))
                await store.forget_instance(conn, self.instance)
        except OUTAGE_ERRORS as exc:
            log.warning(
                "presence: cannot remove this instance's entries (%s); other instances "
                "will after realtime.presence_timeout_seconds",
                exc,
            )
