"""One client's WebSocket: who it is, what it joined, and how it is written to.

Writes are synchronous: a frame is written to the transport at once (the same
bytes for every socket of a channel, see protocol.py), so a message reaches a
thousand sockets without a thousand awaits. A client that reads too slowly to
keep its unsent bytes under `realtime.send_buffer_bytes` is cut off rather than
allowed to hold the server's memory.

A socket's joins, leaves and messages are handled one at a time, in order, by a
task that exists only while there is work; heartbeats and `auth` are answered
at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from ..guards import Caller
from ..manifests.model import ChannelSpec
from . import protocol

log = logging.getLogger("actions_server.realtime")

MAX_QUEUED = 64  # joins, leaves and messages waiting their turn, per socket
MAX_PENDING = 1000  # messages held for a socket while its join is decided


class Subscription:
    """One socket in one channel. `pending` holds what arrived while the join was
    being authorised (None once it was), up to MAX_PENDING messages."""

    __slots__ = ("params", "pending", "presence_ref", "spec", "topic")

    def __init__(self, topic: str, spec: ChannelSpec, params: Mapping[str, str]) -> None:
        self.topic = topic
        self.spec = spec
        self.params = params
        self.pending: list[bytes] | None = []
        self.presence_ref: str | None = None


class Socket:
    __slots__ = (
        "_allowance",
        "_checked_at",
        "_queue",
        "_worker",
        "caller",
        "closed",
        "expires_at",
        "id",
        "last_seen",
        "nonce",
        "rate",
        "subscriptions",
        "transport",
        "ws",
    )

    def __init__(
        self,
        socket_id: str,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        caller: Caller,
        expires_at: float | None,
        rate: float,
    ) -> None:
        self.id = socket_id  # for logs: names the instance
        self.nonce = f"{random.getrandbits(64):016x}"  # what other clients may see
        self.ws = ws
        self.transport = transport
        self.caller = caller
        self.expires_at = expires_at  # the token's exp (with leeway): closed then
        self.last_seen = time.monotonic()
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self.rate = rate
        self._allowance = rate
        self._checked_at = self.last_seen
        self._queue: deque[Callable[[], Awaitable[None]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    @property
    def presence_key(self) -> str:
        user = self.caller.principal.user_id
        return user if user is not None else f"anonymous:{self.nonce}"

    def presence_ref(self) -> str:
        """A new id for one join of this socket, as presence metas show it."""
        return f"{self.nonce}.{random.getrandbits(32):08x}"

    # --- writing ------------------------------------------------------------------------

    def send(self, envelope: bytes) -> None:
        self.send_frame(protocol.frame(envelope))

    def send_frame(self, data: bytes, limit: int | None = None) -> None:
        """Write one encoded frame; past `limit` unsent bytes the client is cut off."""
        transport = self.transport
        if self.closed or transport.is_closing():
            return
        transport.write(data)
        if limit is not None and transport.get_write_buffer_size() > limit:
            log.warning("closed a realtime socket that reads too slowly (%s)", self.id)
            self.closed = True
            transport.abort()

    # --- reading --------------------------------------------------------------------------

    def allow(self, now: float) -> bool:
        """Whether one more client message fits the rate (a token bucket of a second's worth)."""
        rate = self.rate
        self._allowance = min(rate, self._allowance + (now - self._checked_at) * rate)
        self._checked_at = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True

    def enqueue(self, step: Callable[[], Awaitable[None]]) -> bool:
        """Run `step` after the socket's earlier joins, leaves and messages; False when
        too many are waiting."""
        if len(self._queue) >= MAX_QUEUED:
            return False
        self._queue.append(step)
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"realtime-{self.id}")
        return True

    async def _work(self) -> None:
        try:
            while self._queue and not self.closed:
                step = self._queue.popleft()
                try:
                    await step()
                except Exception:
                    log.exception("realtime socket %s: a step failed", self.id)
        finally:
            self._worker = None

    async def stop(self) -> None:
        """Cancel what is running for this socket (it has closed)."""
        self.closed = True
        self._queue.clear()
        worker = self._worker
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    def __repr__(self) -> str:
        return f"<Socket {self.id} user={self.caller.principal.user_id!r}>"
