"""`ctx.channel(name).publish(event, payload)`: delivered only if the run commits.

Like `ctx.event.emit`, `publish` is a plain call (awaiting its result is
harmless): the message is checked and encoded at once, buffered, and written
with the run's transaction just before it commits, in one statement with every
other message of the run; a savepoint that rolls back drops the messages
published inside it. The committed rows and one NOTIFY reach every instance
(realtime/feed.py). Jobs, events and cron runs publish the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ActionsServerError
from ..jsonutil import dumps
from ..queue.facades import Emitted
from ..registry import Registry
from . import store

if TYPE_CHECKING:
    from ..scope import RunScope

MAX_EVENT_LENGTH = 200


class ChannelError(ActionsServerError):
    """A publish that cannot be done as asked: a bug in the calling handler."""


class ChannelBuffer:
    """The messages a run published, written just before it commits."""

    __slots__ = ("_messages",)

    def __init__(self) -> None:
        self._messages: list[store.Outgoing] = []

    def add(self, message: store.Outgoing) -> None:
        self._messages.append(message)

    def __bool__(self) -> bool:
        return bool(self._messages)

    def mark(self) -> Callable[[], None]:
        """A function that forgets what is published from now on (a savepoint rolled back)."""
        size = len(self._messages)

        def rewind() -> None:
            del self._messages[size:]

        return rewind

    async def flush(self, ctx: RunScope) -> None:
        messages, self._messages = self._messages, []
        if messages:
            await store.publish(await ctx.db.connection(), messages)


class Channel:
    """`ctx.channel(name)`: one concrete channel, such as `org:acme:projects`."""

    __slots__ = ("_buffer", "_max_bytes", "name")

    def __init__(self, name: str, buffer: ChannelBuffer, max_bytes: int) -> None:
        self.name = name
        self._buffer = buffer
        self._max_bytes = max_bytes

    def publish(self, event: str, payload: Any = None) -> Emitted:
        """Send `event` with `payload` (a JSON object) to everyone in the channel, on every
        instance, once the run commits."""
        if not isinstance(event, str) or not event or len(event) > MAX_EVENT_LENGTH:
            raise ChannelError(f"an event is a name of 1 to {MAX_EVENT_LENGTH} characters")
        payload = {} if payload is None else payload
        if not isinstance(payload, Mapping):
            kind = type(payload).__name__
            raise ChannelError(f"{event!r}: the payload must be a JSON object (a dict), not {kind}")
        try:
            text = dumps(payload)
        except TypeError as exc:
            raise ChannelError(f"{event!r}: the payload is not JSON: {exc}") from None
        if len(text) > self._max_bytes:
            raise ChannelError(
                f"{event!r}: the payload is {len(text)} bytes as JSON, more than "
                f"realtime.max_payload_bytes ({self._max_bytes})"
            )
        self._buffer.add(store.Outgoing(channel=self.name, event=event, payload=text.decode()))
        return Emitted(event)

    def __repr__(self) -> str:
        return f"<Channel {self.name!r}>"


def channel(name: str, registry: Registry, buffer: ChannelBuffer, max_bytes: int) -> Channel:
    """`ctx.channel(name)`, once `name` is known to belong to a declared channel."""
    if registry.channels.match(name) is None:
        declared = ", ".join(repr(c.name) for c in registry.channels.entries) or "none"
        raise ChannelError(
            f"{name!r} is not a channel any manifest declares (declared: {declared}); "
            "add it under `channels:`"
        )
    return Channel(name, buffer, max_bytes)
