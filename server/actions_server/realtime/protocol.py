"""The realtime protocol: JSON envelopes in WebSocket text frames (pure).

Client → server: `auth` (a token), `join`, `leave`, `heartbeat`, `message` (runs
the channel's `on_message` action). Server → client: `reply` (to a client's
`ref`: status ok with a response, or error with a code), `message` (an event
and its payload), `presence_state`, `presence_diff`, and `leave` when the
server takes a socket out of a channel. docs/realtime.md shows every shape.

A message is encoded once for all of a channel's sockets: the stored payload
is already JSON and is spliced into the envelope as is, and the frame header is
the same for every socket (server frames are not masked, RFC 6455 §5.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..jsonutil import dumps

CLIENT_TYPES = frozenset({"auth", "join", "leave", "heartbeat", "message"})
NEEDS_TOPIC = frozenset({"join", "leave", "message"})
MAX_REF_LENGTH = 64

TEXT = 0x1
CLOSE = 0x8

# Close codes (RFC 6455 §7.4, and the 4000-4999 range for applications).
GOING_AWAY = 1001
UNSUPPORTED = 1003
POLICY = 1008
HEARTBEAT_MISSED = 4000
TOKEN_EXPIRED = 4001
TOO_SLOW = 4008


class ProtocolError(ValueError):
    """A client message that is not one of the protocol's shapes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientMessage:
    type: str
    ref: str | None = None
    topic: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    token: str | None = None


def parse(text: str | bytes) -> ClientMessage:
    """A client's text frame as a message; ProtocolError says what is wrong."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("a message is a JSON object") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message is a JSON object")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(f"type must be one of {', '.join(sorted(CLIENT_TYPES))}")
    ref = data.get("ref")
    if ref is not None:
        if isinstance(ref, bool) or not isinstance(ref, str | int):
            raise ProtocolError("ref must be a string or a number")
        ref = str(ref)
        if len(ref) > MAX_REF_LENGTH:
            raise ProtocolError(f"ref is at most {MAX_REF_LENGTH} characters")
    topic = data.get("topic")
    if kind in NEEDS_TOPIC and not isinstance(topic, str):
        raise ProtocolError(f"a {kind} names its channel in topic")
    payload = data.get("payload", {})
    if not isinstance(payload, dict):
        raise ProtocolError("payload must be a JSON object")
    token = data.get("token")
    if kind == "auth" and (not isinstance(token, str) or not token):
        raise ProtocolError("an auth message carries the token in token")
    return ClientMessage(
        type=kind,
        ref=ref,
        topic=topic if isinstance(topic, str) else None,
        payload=payload,
        token=token if kind == "auth" else None,
    )


# --- what the server sends ----------------------------------------------------------


def frame(data: bytes, opcode: int = TEXT) -> bytes:
    """One final, unmasked WebSocket frame holding `data`."""
    size = len(data)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + data


def reply_ok(ref: str | None, topic: str | None, response: Any = None) -> bytes:
    return dumps(
        {
            "type": "reply",
            "ref": ref,
            "topic": topic,
            "status": "ok",
            "response": {} if response is None else response,
        }
    )


def reply_error(ref: str | None, topic: str | None, error: Mapping[str, Any]) -> bytes:
    return dumps({"type": "reply", "ref": ref, "topic": topic, "status": "error", "error": error})


def left(topic: str, error: Mapping[str, Any]) -> bytes:
    """The server took the socket out of `topic` (its guards now refuse it)."""
    return dumps({"type": "leave", "topic": topic, "error": error})


def presence_state(topic: str, state: Mapping[str, Any]) -> bytes:
    return dumps({"type": "presence_state", "topic": topic, "payload": state})


_KINDS = {"message": b"message", "presence": b"presence_diff"}


def stored(kind: str, topic: str, event: str | None, payload: str) -> bytes:
    """The envelope of a stored message (`payload` is its JSON text, spliced in as is)."""
    head = b'{"type":"' + _KINDS[kind] + b'","topic":' + dumps(topic)
    if event is not None:
        head += b',"event":' + dumps(event)
    return head + b',"payload":' + payload.encode() + b"}"


# --- presence -------------------------------------------------------------------------


def state_of(entries: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """`{key: {"metas": [meta, ...]}}` of (key, meta) pairs: one key per user, one meta
    per socket that joined (a user with two tabs has two)."""
    state: dict[str, dict[str, Any]] = {}
    for key, meta in entries:
        state.setdefault(key, {"metas": []})["metas"].append(dict(meta))
    return state


def diffs(
    joins: Iterable[tuple[str, str, Mapping[str, Any]]],
    leaves: Iterable[tuple[str, str, Mapping[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """channel → `{"joins": state, "leaves": state}` of (channel, key, meta) triples."""
    by_channel: dict[str, dict[str, Any]] = {}
    for side, entries in (("joins", joins), ("leaves", leaves)):
        for channel, key, meta in entries:
            diff = by_channel.setdefault(channel, {"joins": {}, "leaves": {}})
            diff[side].setdefault(key, {"metas": []})["metas"].append(dict(meta))
    return by_channel
