"""The realtime endpoint: sockets in, messages dispatched, sockets kept healthy.

- An upgrade at `realtime.path` is refused with the HTTP error body (401 for a
  token that does not verify, 503 past `realtime.max_sockets`, 426 for a request
  that is not an upgrade); a token comes in `Authorization: Bearer`, `?token=`,
  or a first `auth` message, and `auth` later refreshes it.
- Heartbeats and `auth` are answered at once; joins, leaves and messages go to
  the socket's queue, handled in order by `Channels` (channels.py).
- Every second a sweep closes the sockets whose client went silent past
  `realtime.heartbeat_timeout_seconds` and those whose token has expired; every
  `realtime.reauthorize_seconds` each socket's channels are checked again, the
  sockets spread over the interval.

The listener, presence and the background loops start with the first socket:
an app that never serves one holds no extra connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import socket as socketlib
import time
from collections.abc import Coroutine
from typing import Any, cast

from aiohttp import WSMsgType, web

from .. import loops
from ..auth import TokenError, bearer_token
from ..config import RealtimeConfig
from ..errors import ActionError
from ..guards import Caller
from ..http.caller import Network, client_ip, forwarded_for
from ..http.errors import error_json
from ..registry import Registry
from ..runtime import Runtime
from . import protocol, store
from .channels import Channels, refused, reply_error
from .feed import Feed
from .presence import PresenceTracker
from .protocol import ClientMessage, ProtocolError
from .sockets import Socket

log = logging.getLogger("actions_server.realtime")

TRACE_HEADER = "x-trace-id"
SWEEP_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 2.0  # waiting for a client's answer to our close frame


class Realtime:
    def __init__(self, runtime: Runtime, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.config: RealtimeConfig = runtime.config.realtime
        self.leeway = runtime.config.auth.jwt.leeway_seconds
        self.runtime = runtime
        self.executor = runtime.executor
        self.verifier = runtime.executor.auth.verifier
        self.trusted_proxies = trusted_proxies
        self.sockets: set[Socket] = set()
        self.instance = f"{socketlib.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.feed = Feed(
            runtime.listen_dsn, runtime.database.options, self._deliver, name=self.instance
        )
        self.presence = PresenceTracker(
            runtime.database,
            self.instance,
            heartbeat_seconds=self.config.presence_heartbeat_seconds,
            timeout_seconds=self.config.presence_timeout_seconds,
        )
        self.channels = Channels(
            self.config,
            runtime.executor,
            runtime.registry,
            self.presence,
            self.feed,
            acquire_timeout=runtime.database.acquire_timeout,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._starting: asyncio.Lock | None = None
        self._started = False
        self._closing = False
        self._socket_ids = 0
        self._upgrading = 0  # upgrades under way, counted against max_sockets

    def use_registry(self, registry: Registry) -> None:
        """Joins from now on use `registry`'s channels; joined sockets are checked against
        them at the next re-authorisation."""
        self.channels.registry = registry

    # --- starting and stopping ----------------------------------------------------------

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._started:
                return
            try:
                await self.presence.register()
            except Exception as exc:  # the heartbeat registers it once the database answers
                log.warning("realtime: cannot register this instance yet: %s", exc)
            loops: list[tuple[str, Coroutine[Any, Any, None]]] = [
                ("feed", self.feed.run()),
                ("presence", self.presence.heartbeat()),
                ("leaves", self.presence.write_leaves()),
                ("sweep", self._sweep()),
            ]
            if self.config.reauthorize_seconds > 0:
                loops.append(("reauthorize", self._reauthorize()))
            self._tasks = [asyncio.create_task(c, name=f"realtime-{n}") for n, c in loops]
            self._started = True
            log.info("realtime: serving channels as instance %s", self.instance)

    async def close(self) -> None:
        """Close every socket (1001, going away: clients reconnect elsewhere), leave every
        presence, stop the listener."""
        self._closing = True
        sockets = list(self.sockets)
        if sockets:
            await asyncio.gather(
                *(self._close(s, protocol.GOING_AWAY, "server shutting down") for s in sockets),
                return_exceptions=True,
            )
        await loops.stop([*self._tasks, *self._background])
        self._tasks = []
        if self._started:
            await self.presence.close()
            self._started = False

    # --- the endpoint ---------------------------------------------------------------------

    async def upgrade(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        """GET /realtime: a WebSocket, or the HTTP error body saying why not."""
        if self._closing:
            return _http_error(
                refused("shutting_down", "the server is shutting down", 503), trace_id
            )
        if len(self.sockets) + self._upgrading >= self.config.max_sockets:
            error = ActionError(
                503,
                "too_many_sockets",
                "this server has as many realtime sockets open as it takes; try again shortly",
                headers={"Retry-After": "1"},
            )
            return _http_error(error, trace_id)
        ip = client_ip(request.remote, forwarded_for(request.headers), self.trusted_proxies)
        try:
            caller, expires = self._authenticate(_token_of(request), ip)
        except TokenError as exc:
            return _http_error(exc, trace_id)
        ws = web.WebSocketResponse(
            autoping=True,
            compress=False,  # frames are encoded once for every socket, uncompressed
            max_msg_size=self.config.max_message_bytes,
            timeout=CLOSE_TIMEOUT_SECONDS,
        )
        if not ws.can_prepare(request).ok:
            error = ActionError(426, "upgrade_required", "this endpoint speaks WebSocket only")
            return _http_error(error, trace_id)
        self._upgrading += 1
        try:
            await self._start()
            await ws.prepare(request)
        finally:
            self._upgrading -= 1
        transport = cast(asyncio.Transport, request.transport)
        self._socket_ids += 1
        socket = Socket(
            f"{self.instance}:{self._socket_ids}",
            ws,
            transport,
            caller,
            expires,
            self.config.messages_per_second,
        )
        self.sockets.add(socket)
        try:
            async for message in ws:
                socket.last_seen = time.monotonic()
                if message.type == WSMsgType.TEXT:
                    self._received(socket, message.data)
                elif message.type == WSMsgType.BINARY:
                    await ws.close(code=protocol.UNSUPPORTED, message=b"text frames only")
                    break
        except Exception as exc:  # a broken connection: nothing to answer
            log.debug("realtime socket %s ended: %s", socket.id, exc)
        finally:
            await self._forget(socket)
        return ws

    def _authenticate(self, token: str | None, ip: str | None) -> tuple[Caller, float | None]:
        """The caller a token makes, and when the socket must close (its exp, with leeway)."""
        if token is None:
            return Caller(client_ip=ip), None
        principal = self.verifier.verify(token)
        expires = principal.claims.get("exp")
        return (
            Caller(principal=principal, client_ip=ip),
            float(expires) + self.leeway if isinstance(expires, int | float) else None,
        )

    def _received(self, socket: Socket, text: str) -> None:
        """One text frame from a client: answered now (heartbeat, auth) or queued in order."""
        try:
            message = protocol.parse(text)
        except ProtocolError as exc:
            reply_error(socket, None, None, refused("invalid_message", str(exc)))
            return
        if not socket.allow(time.monotonic()):
            error = ActionError(
                429,
                "rate_limited",
                f"more than {self.config.messages_per_second:g} messages a second; "
                "this one was dropped",
            )
            reply_error(socket, message.ref, message.topic, error)
            return
        if message.type == "heartbeat":
            socket.send(protocol.reply_ok(message.ref, None))
        elif message.type == "auth":
            self._auth(socket, message)
        elif not socket.enqueue(lambda: self._step(socket, message)):
            error = ActionError(429, "busy", "too many joins and messages are waiting; slow down")
            reply_error(socket, message.ref, message.topic, error)

    def _auth(self, socket: Socket, message: ClientMessage) -> None:
        assert message.token is not None
        try:
            caller, expires = self._authenticate(message.token, socket.caller.client_ip)
        except TokenError as exc:
            reply_error(socket, message.ref, None, exc)
            return
        known = socket.caller.principal
        if known.is_authenticated and caller.principal.user_id != known.user_id:
            error = ActionError(
                403, "user_mismatch", "a socket's user cannot change; open a new socket"
            )
            reply_error(socket, message.ref, None, error)
            return
        socket.caller, socket.expires_at = caller, expires
        socket.send(protocol.reply_ok(message.ref, None, {"user_id": caller.principal.user_id}))

    async def _step(self, socket: Socket, message: ClientMessage) -> None:
        try:
            if message.type == "join":
                await self.channels.join(socket, message)
            elif message.type == "leave":
                self.channels.leave(socket, message)
            else:
                await self.channels.message(socket, message)
        except ActionError as exc:
            reply_error(socket, message.ref, message.topic, exc)

    async def _forget(self, socket: Socket) -> None:
        """The socket has closed: out of every channel and presence."""
        self.sockets.discard(socket)
        await socket.stop()
        self.channels.forget(socket)

    async def _deliver(self, rows: list[store.Stored]) -> None:
        await self.channels.deliver(rows)

    # --- background ---------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close the sockets whose client went silent or whose token expired or was
        revoked (`actions-server token revoke`, `ctx.auth.logout`)."""
        timeout = self.config.heartbeat_timeout_seconds
        revoked = self.verifier.revoked
        while True:
            await loops.pause(SWEEP_SECONDS)
            now, wall = time.monotonic(), time.time()
            for socket in list(self.sockets):
                if socket.closed:
                    continue
                if now - socket.last_seen > timeout:
                    self._later(self._close(socket, protocol.HEARTBEAT_MISSED, "heartbeat missed"))
                elif socket.expires_at is not None and wall > socket.expires_at:
                    self._later(self._close(socket, protocol.TOKEN_EXPIRED, "token expired"))
                elif revoked and revoked.refuses(socket.caller.principal.claims):
                    self._later(self._close(socket, protocol.TOKEN_EXPIRED, "token revoked"))

    async def _close(self, socket: Socket, code: int, reason: str) -> None:
        if socket.closed:
            return
        socket.closed = True
        with contextlib.suppress(Exception):
            await socket.ws.close(code=code, message=reason.encode())

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reauthorize(self) -> None:
        """Run each joined channel's guards again, spread over the interval."""
        interval = self.config.reauthorize_seconds
        while True:
            sockets = list(self.sockets)
            if not sockets:
                await loops.pause(interval)
                continue
            spacing = interval / len(sockets)
            for socket in sockets:
                if not socket.closed and socket.subscriptions:
                    socket.enqueue(functools.partial(self.channels.recheck, socket))
                await loops.pause(spacing)


def _token_of(request: web.BaseRequest) -> str | None:
    """The bearer token of an upgrade: the Authorization header, or `?token=` for browsers
    (which cannot set headers on a WebSocket)."""
    header = request.headers.get("Authorization")
    if header is not None:
        return bearer_token(header)
    return request.query.get("token") or None


def _http_error(error: ActionError, trace_id: str) -> web.Response:
    headers = {"Content-Type": "application/json", TRACE_HEADER: trace_id, **error.headers}
    return web.Response(body=error_json(error, trace_id), status=error.status, headers=headers)
