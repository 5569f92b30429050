"""Which socket is in which channel: joins through the guards, leaves, clients'
messages, the fan-out of published messages, and the periodic re-checks.

- A join runs the channel's guards through the executor, as a run of a small
  built-in action named `channel:<pattern>` (trigger `join`) whose input is the
  pattern's parameters, so `in_org` finds `org_id` in the channel name and the
  decision is recorded like any run. A refused join gets an error reply and
  nothing else: messages that arrive while a join is being decided wait in the
  subscription, and are sent only once it is granted.
- A client's message on a channel with `on_message` runs that action (trigger
  `channel`) with the message's payload and the channel's parameters as input.
- Re-checks run a joined channel's guards again (not recorded); a socket they
  now refuse is taken out with a `leave` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ..config import RealtimeConfig
from ..errors import ActionError, DatabaseUnavailable, InternalError
from ..executor import Executor
from ..http import errors as http_errors
from ..ids import new_trace_id
from ..manifests.model import ActionSpec, ChannelSpec
from ..registry import Registry
from . import protocol, store
from .feed import Feed
from .presence import PresenceTracker
from .protocol import ClientMessage
from .sockets import MAX_PENDING, Socket, Subscription

log = logging.getLogger("actions_server.realtime")

YIELD_EVERY = 4096  # frames written before the fan-out lets other tasks run


class Refused(ActionError):
    """A realtime request the protocol refuses (bad message, unknown channel, ...)."""

    status = 400
    code = "invalid_message"


def refused(code: str, message: str, status: int = 400) -> Refused:
    return Refused(status, code, message)


def error_body(error: ActionError, trace_id: str) -> dict[str, Any]:
    """The `error` of the HTTP error body: code, message, details, trace_id."""
    body: dict[str, Any] = http_errors.error_body(error, trace_id)["error"]
    return body


def reply_error(
    socket: Socket,
    ref: str | None,
    topic: str | None,
    error: ActionError,
    trace_id: str | None = None,
) -> None:
    socket.send(protocol.reply_error(ref, topic, error_body(error, trace_id or new_trace_id())))


async def _joined(input: Any, ctx: Any) -> None:
    """The handler of a join: the guards have decided by the time it runs."""


def join_action(spec: ChannelSpec) -> ActionSpec:
    """The built-in action whose runs are the joins of `spec` (its guards, its module)."""
    return ActionSpec(
        name=f"channel:{spec.name}",
        module=spec.module,
        handler_ref="actions_server.realtime.channels:_joined",
        handler=_joined,
        location=spec.location,
        description=f"join channel {spec.name}",
        guards=spec.guards,
    )


class Channels:
    def __init__(
        self,
        config: RealtimeConfig,
        executor: Executor,
        registry: Registry,
        presence: PresenceTracker,
        feed: Feed,
        *,
        acquire_timeout: float,
    ) -> None:
        self.config = config
        self.executor = executor
        self.registry = registry
        self.presence = presence
        self.feed = feed
        self.acquire_timeout = acquire_timeout
        self.topics: dict[str, dict[Socket, Subscription]] = {}
        self._joins: dict[str, tuple[ChannelSpec, ActionSpec]] = {}

    def _join_action(self, spec: ChannelSpec) -> ActionSpec:
        known = self._joins.get(spec.name)
        if known is not None and known[0] is spec:
            return known[1]
        action = join_action(spec)
        self._joins[spec.name] = (spec, action)
        return action

    async def join(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        if topic in socket.subscriptions:
            raise refused("already_joined", f"this socket is in {topic!r} already")
        if len(socket.subscriptions) >= self.config.max_channels_per_socket:
            raise refused(
                "too_many_channels",
                f"a socket may be in {self.config.max_channels_per_socket} channels at most",
            )
        found = self.registry.channels.match(topic)
        if found is None:
            raise refused("unknown_channel", f"no channel {topic!r}", 404)
        spec, params = found
        if not self.feed.started.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.acquire_timeout):
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
            self.unsubscribe(socket, subscription)
            if isinstance(exc, ActionError):
                reply_error(socket, message.ref, topic, exc, trace_id)
                return
            if isinstance(exc, Exception):
                log.exception("realtime: joining %s failed", topic, extra={"trace_id": trace_id})
                reply_error(socket, message.ref, topic, InternalError(), trace_id)
                return
            raise
        socket.send(protocol.reply_ok(message.ref, topic))
        if state is not None:
            socket.send(protocol.presence_state(topic, state))
        waiting, subscription.pending = subscription.pending or [], None
        for data in waiting:
            socket.send_frame(data, self.config.send_buffer_bytes)

    def leave(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        subscription = socket.subscriptions.get(topic)
        if subscription is None:
            raise refused("not_joined", f"this socket is not in {topic!r}")
        self.unsubscribe(socket, subscription)
        socket.send(protocol.reply_ok(message.ref, topic))

    def unsubscribe(self, socket: Socket, subscription: Subscription) -> None:
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

    def forget(self, socket: Socket) -> None:
        """The socket has closed: out of every channel and presence."""
        for subscription in list(socket.subscriptions.values()):
            self.unsubscribe(socket, subscription)

    # --- messages from clients --------------------------------------------------------------

    async def message(self, socket: Socket, message: ClientMessage) -> None:
        topic = message.topic
        assert topic is not None
        subscription = socket.subscriptions.get(topic)
        if subscription is None or subscription.pending is not None:
            raise refused("not_joined", f"join {topic!r} before sending to it")
        action_name = subscription.spec.on_message
        if action_name is None:
            raise refused(
                "receive_only",
                f"{topic!r} takes no messages from clients (it has no on_message)",
                403,
            )
        action = self.registry.action(action_name)
        if action is None:
            raise refused("unknown_action", f"no action named {action_name!r}", 500)
        payload = {**message.payload, **subscription.params}  # the channel's parameters win
        trace_id = new_trace_id()
        try:
            result = await self.executor.run(
                action, payload, trigger="channel", caller=socket.caller, trace_id=trace_id
            )
        except ActionError as exc:
            reply_error(socket, message.ref, topic, exc, trace_id)
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
            written += len(members)
            if written >= YIELD_EVERY:
                written = 0
                await asyncio.sleep(0)

    # --- re-checks ----------------------------------------------------------------------------

    async def recheck(self, socket: Socket) -> None:
        for subscription in list(socket.subscriptions.values()):
            if subscription.pending is not None or socket.closed:
                continue
            found = self.registry.channels.match(subscription.topic)
            try:
                if found is None:
                    raise refused(
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
                self.unsubscribe(socket, subscription)
                socket.send(protocol.left(subscription.topic, error_body(exc, new_trace_id())))
