"""The realtime endpoint and hub: sockets in, channels joined through the guards,
messages fanned out from the feed to the sockets of this process.

- An upgrade at `realtime.path` is refused with the HTTP error body (401 for a
  token that does not verify, 503 past `realtime.max_sockets`); a token comes in
  `Authorization: Bearer`, `?token=`, or a first `auth` message.
- A join runs the channel's guards through the executor, as a run of a small
  built-in action named `channel:<pattern>` (trigger `join`) whose input is the
  pattern's parameters, so `in_org` finds `org_id` in the channel name and the
  decision is recorded like any run. A refused join gets an error reply and
  nothing else: messages that arrive while a join is being decided wait, and are
  sent only once it is granted.
- A client's message on a channel with `on_message` runs that action (trigger
  `channel`) with the message's payload and the channel's parameters as input.
- Every second the hub closes the sockets whose client went silent past
  `realtime.heartbeat_timeout_seconds` and those whose token has expired; every
  `realtime.reauthorize_seconds` each joined channel's guards run again (spread
  over the interval, not recorded) and a socket they now refuse is taken out.

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

from ..auth import TokenError, bearer_token
from ..config import RealtimeConfig
from ..errors import ActionError, DatabaseUnavailable, InternalError
from ..executor import new_trace_id
from ..guards import Caller
from ..http.caller import Network, client_ip, forwarded_for
from ..http.errors import error_body, error_json
from ..manifests.model import ActionSpec, ChannelSpec
from ..registry import Registry
from ..runtime import Runtime
from . import protocol, store
from .feed import Feed
from .presence import PresenceTracker
from .protocol import ClientMessage, ProtocolError
from .sockets import MAX_PENDING, Socket, Subscription

log = logging.getLogger("actions_server.realtime")

TRACE_HEADER = "x-trace-id"
SWEEP_SECONDS = 1.0
YIELD_EVERY = 4096  # frames written before the fan-out lets other tasks run
CLOSE_TIMEOUT_SECONDS = 2.0  # waiting for a client's answer to our close frame


class Refused(ActionError):
    """A realtime request the protocol refuses (bad message, unknown channel, ...)."""

    status = 400
    code = "invalid_message"


def _refused(code: str, message: str, status: int = 400) -> Refused:
    return Refused(status, code, message)


async def _joined(input: Any, ctx: Any) -> None:
    """The handler of a join: the guards have decided by the time it runs."""


def join_action(spec: ChannelSpec) -> ActionSpec:
    """The built-in action whose runs are the joins of `spec` (its guards, its module)."""
    return ActionSpec(
        name=f"channel:{spec.name}",
        module=spec.module,
        handler_ref="actions_server.realtime.hub:_joined",
        handler=_joined,
        location=spec.location,
        description=f"join channel {spec.name}",
        guards=spec.guards,
    )


class Realtime:
    def __init__(self, runtime: Runtime, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.config: RealtimeConfig = runtime.config.realtime
        self.leeway = runtime.config.auth.jwt.leeway_seconds
        self.runtime = runtime
        self.executor = runtime.executor
        self.verifier = runtime.executor.auth.verifier
        self.trusted_proxies = trusted_proxies
        self.registry = runtime.registry
        self._joins: dict[str, tuple[ChannelSpec, ActionSpec]] = {}
        self.sockets: set[Socket] = set()
        self.topics: dict[str, dict[Socket, Subscription]] = {}
        self.instance = f"{socketlib.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.feed = Feed(runtime.dsn, runtime.database.options, self.deliver, name=self.instance)
        self.presence = PresenceTracker(
            runtime.database,
            self.instance,
            heartbeat_seconds=self.config.presence_heartbeat_seconds,
            timeout_seconds=self.config.presence_timeout_seconds,
        )
        self.delivered = 0  # frames written for published messages (for benchmarks)
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
        self.registry = registry

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
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks = []
        if self._started:
            await self.presence.close()
            self._started = False

    # --- the endpoint ---------------------------------------------------------------------

    async def upgrade(self, request: web.BaseRequest, trace_id: str) -> web.StreamResponse:
        """GET /realtime: a WebSocket, or the HTTP error body saying why not."""
        if self._closing:
            return _http_error(
                _refused("shutting_down", "the server is shutting down", 503), trace_id
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
            self._reply_error(socket, None, None, _refused("invalid_message", str(exc)))
            return
        if not socket.allow(time.monotonic()):
            error = ActionError(
                429,
                "rate_limited",
                f"more than {self.config.messages_per_second:g} messages a second; "
                "this one was dropped",
            )
            self._reply_error(socket, message.ref, message.topic, error)
            return
        if message.type == "heartbeat":
            socket.send(protocol.reply_ok(message.ref, None))
        elif message.type == "auth":
            self._auth(socket, message)
        elif not socket.enqueue(lambda: self._step(socket, message)):
            error = ActionError(429, "busy", "too many joins and messages are waiting; slow down")
            self._reply_error(socket, message.ref, message.topic, error)

    def _auth(self, socket: Socket, message: ClientMessage) -> None:
        assert message.token is not None
        try:
            caller, expires = self._authenticate(message.token, socket.caller.client_ip)
        except TokenError as exc:
            self._reply_error(socket, message.ref, None, exc)
            return
        known = socket.caller.principal
        if known.is_authenticated and caller.principal.user_id != known.user_id:
            error = ActionError(
                403, "user_mismatch", "a socket's user cannot change; open a new socket"
            )
            self._reply_error(socket, message.ref, None, error)
            return
        socket.caller, socket.expires_at = caller, expires
        socket.send(protocol.reply_ok(message.ref, None, {"user_id": caller.principal.user_id}))

    async def _step(self, socket: Socket, message: ClientMessage) -> None:
        try:
            if message.type == "join":
                await self._join(socket, message)
            elif message.type == "leave":
                self._leave(socket, message)
            else:
                await self._message(socket, message)
        except ActionError as exc:
            self._reply_error(socket, message.ref, message.topic, exc)

    # --- joining and leaving --------------------------------------------------------------

    def _join_action(self, spec: ChannelSpec) -> ActionSpec:
        known = self._joins.get(spec.name)
        if known is not None and known[0] is spec:
            return known[1]
        action = join_action(spec)
        self._joins[spec.name] = (spec, action)
        return action

    async def _join(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        if topic in socket.subscriptions:
            raise _refused("already_joined", f"this socket is in {topic!r} already")
        if len(socket.subscriptions) >= self.config.max_channels_per_socket:
            raise _refused(
                "too_many_channels",
                f"a socket may be in {self.config.max_channels_per_socket} channels at most",
            )
        found = self.registry.channels.match(topic)
        if found is None:
            raise _refused("unknown_channel", f"no channel {topic!r}", 404)
        spec, params = found
        if not self.feed.started.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.runtime.database.acquire_timeout):
                    await self.feed.started.wait()
            if not self.feed.started.is_set():
                raise DatabaseUnavailable()
        subscription = Subscription(topic, spec, params)
        socket.subscriptions[topic] = subscription
        self.topics.setdefault(topic, {})[socket] = subscription
        trace_id = new_trace_id()
        try:
            await self.executor.run(
                self._join_action(spec),
                dict(params),
                trigger="join",
                caller=socket.caller,
                trace_id=trace_id,
            )
            state = None
            if spec.presence and not socket.closed:
                ref = socket.presence_ref()
                state = await self.presence.track(
                    topic, ref, socket.presence_key, {"ref": ref, "online_at": int(time.time())}
                )
                subscription.presence_ref = ref
        except BaseException as exc:
            self._unsubscribe(socket, subscription)
            if isinstance(exc, ActionError):
                self._reply_error(socket, message.ref, topic, exc, trace_id)
                return
            if isinstance(exc, Exception):
                log.exception("realtime: joining %s failed", topic, extra={"trace_id": trace_id})
                self._reply_error(socket, message.ref, topic, InternalError(), trace_id)
                return
            raise
        socket.send(protocol.reply_ok(message.ref, topic))
        if state is not None:
            socket.send(protocol.presence_state(topic, state))
        waiting, subscription.pending = subscription.pending or [], None
        for data in waiting:
            socket.send_frame(data, self.config.send_buffer_bytes)

    def _leave(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        subscription = socket.subscriptions.get(topic)
        if subscription is None:
            raise _refused("not_joined", f"this socket is not in {topic!r}")
        self._unsubscribe(socket, subscription)
        socket.send(protocol.reply_ok(message.ref, topic))

    def _unsubscribe(self, socket: Socket, subscription: Subscription) -> None:
        topic = subscription.topic
        if socket.subscriptions.get(topic) is subscription:
            del socket.subscriptions[topic]
        members = self.topics.get(topic)
        if members is not None and members.get(socket) is subscription:
            del members[socket]
            if not members:
                del self.topics[topic]
        if subscription.presence_ref is not None:
            self.presence.untrack(topic, subscription.presence_ref)
            subscription.presence_ref = None

    async def _forget(self, socket: Socket) -> None:
        """The socket has closed: out of every channel and presence."""
        self.sockets.discard(socket)
        await socket.stop()
        for subscription in list(socket.subscriptions.values()):
            self._unsubscribe(socket, subscription)

    # --- messages from clients --------------------------------------------------------------

    async def _message(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        subscription = socket.subscriptions.get(topic)
        if subscription is None or subscription.pending is not None:
            raise _refused("not_joined", f"join {topic!r} before sending to it")
        action_name = subscription.spec.on_message
        if action_name is None:
            raise _refused(
                "receive_only",
                f"{topic!r} takes no messages from clients (it has no on_message)",
                403,
            )
        action = self.registry.action(action_name)
        if action is None:
            raise _refused("unknown_action", f"no action named {action_name!r}", 500)
        payload = {**message.payload, **subscription.params}  # the channel's parameters win
        trace_id = new_trace_id()
        try:
            result = await self.executor.run(
                action, payload, trigger="channel", caller=socket.caller, trace_id=trace_id
            )
        except ActionError as exc:
            self._reply_error(socket, message.ref, topic, exc, trace_id)
            return
        socket.send(protocol.reply_ok(message.ref, topic, result.output))

    # --- fan-out ------------------------------------------------------------------------------

    async def deliver(self, rows: list[store.Stored]) -> None:
        """Messages from the feed, to this process's sockets in their channels.

        Writes do not wait; the loop lets other tasks run every YIELD_EVERY frames,
        so a burst to a crowded channel does not stall HTTP.
        """
        limit = self.config.send_buffer_bytes
        written = 0
        for row in rows:
            members = self.topics.get(row.channel)
            if not members:
                continue
            data = protocol.frame(protocol.stored(row.kind, row.channel, row.event, row.payload))
            for socket, subscription in list(members.items()):
                pending = subscription.pending
                if pending is None:
                    socket.send_frame(data, limit)
                elif len(pending) < MAX_PENDING:
                    pending.append(data)
            self.delivered += len(members)
            written += len(members)
            if written >= YIELD_EVERY:
                written = 0
                await asyncio.sleep(0)

    # --- background ---------------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close the sockets whose client went silent or whose token expired."""
        timeout = self.config.heartbeat_timeout_seconds
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now, wall = time.monotonic(), time.time()
            for socket in list(self.sockets):
                if socket.closed:
                    continue
                if now - socket.last_seen > timeout:
                    self._later(self._close(socket, protocol.HEARTBEAT_MISSED, "heartbeat missed"))
                elif socket.expires_at is not None and wall > socket.expires_at:
                    self._later(self._close(socket, protocol.TOKEN_EXPIRED, "token expired"))

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
                await asyncio.sleep(interval)
                continue
            pause = interval / len(sockets)
            for socket in sockets:
                if not socket.closed and socket.subscriptions:
                    socket.enqueue(functools.partial(self._recheck, socket))
                await asyncio.sleep(pause)

    async def _recheck(self, socket: Socket) -> None:
        for subscription in list(socket.subscriptions.values()):
            if subscription.pending is not None or socket.closed:
                continue
            found = self.registry.channels.match(subscription.topic)
            try:
                if found is None:
                    raise _refused(
                        "unknown_channel", f"no channel {subscription.topic!r} any more", 404
                    )
                subscription.spec = found[0]
                await self.executor.run(
                    self._join_action(found[0]),
                    dict(found[1]),
                    trigger="join",
                    caller=socket.caller,
                    record=False,
                )
            except ActionError as exc:
                if exc.status >= 500:
                    continue  # the database is down: keep what was granted until it answers
                log.info(
                    "realtime: %s taken out of %s: %s",
                    socket.caller.principal.user_id or socket.id,
                    subscription.topic,
                    exc.message,
                )
                self._unsubscribe(socket, subscription)
                socket.send(protocol.left(subscription.topic, _error(exc, new_trace_id())))

    # --- answers ------------------------------------------------------------------------------

    def _reply_error(
        self,
        socket: Socket,
        ref: str | None,
        topic: str | None,
        error: ActionError,
        trace_id: str | None = None,
    ) -> None:
        socket.send(protocol.reply_error(ref, topic, _error(error, trace_id or new_trace_id())))


def _error(error: ActionError, trace_id: str) -> dict[str, Any]:
    body: dict[str, Any] = error_body(error, trace_id)["error"]
    return body


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
