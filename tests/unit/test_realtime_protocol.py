"""The realtime envelope and WebSocket frames, without a socket."""

from __future__ import annotations

import json

import pytest

from actions_server.realtime import protocol
from actions_server.realtime.protocol import ClientMessage, ProtocolError, parse


def test_client_messages() -> None:
    assert parse('{"type": "join", "ref": 1, "topic": "org:a:b"}') == ClientMessage(
        type="join", ref="1", topic="org:a:b"
    )
    assert parse('{"type": "heartbeat"}') == ClientMessage(type="heartbeat")
    assert parse('{"type": "auth", "token": "t"}').token == "t"
    message = parse('{"type": "message", "topic": "t", "payload": {"a": 1}}')
    assert message.payload == {"a": 1}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("nope", "a JSON object"),
        ("[1]", "a JSON object"),
        ('{"type": "shout"}', "type must be one of"),
        ('{"type": "join"}', "names its channel in topic"),
        ('{"type": "join", "topic": 3}', "names its channel in topic"),
        ('{"type": "message", "topic": "t", "payload": [1]}', "payload must be a JSON object"),
        ('{"type": "auth"}', "carries the token"),
        ('{"type": "heartbeat", "ref": true}', "ref must be"),
        ('{"type": "heartbeat", "ref": "' + "r" * 65 + '"}', "at most 64"),
    ],
)
def test_malformed_client_messages(text: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        parse(text)


def read_frame(encoded: bytes) -> tuple[bool, int, bytes]:
    """(fin, opcode, payload) of one unmasked frame, as RFC 6455 §5.2 lays it out."""
    fin, opcode = bool(encoded[0] & 0x80), encoded[0] & 0x0F
    assert encoded[1] & 0x80 == 0, "a server's frames are not masked"
    size, offset = encoded[1] & 0x7F, 2
    if size == 126:
        size, offset = int.from_bytes(encoded[2:4], "big"), 4
    elif size == 127:
        size, offset = int.from_bytes(encoded[2:10], "big"), 10
    assert len(encoded) == offset + size
    return fin, opcode, encoded[offset:]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 100_000])
def test_frames_carry_any_size(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert read_frame(protocol.frame(data)) == (True, protocol.TEXT, data)


def test_a_stored_message_is_spliced_into_its_envelope() -> None:
    envelope = protocol.stored("message", "org:a:projects", "created", '{"id": 1, "name": "é"}')
    assert json.loads(envelope) == {
        "type": "message",
        "topic": "org:a:projects",
        "event": "created",
        "payload": {"id": 1, "name": "é"},
    }
    diff = protocol.stored("presence", "t", None, '{"joins": {}, "leaves": {}}')
    assert json.loads(diff) == {
        "type": "presence_diff",
        "topic": "t",
        "payload": {"joins": {}, "leaves": {}},
    }


def test_replies() -> None:
    assert json.loads(protocol.reply_ok("1", "t")) == {
        "type": "reply",
        "ref": "1",
        "topic": "t",
        "status": "ok",
        "response": {},
    }
    error = {"code": "forbidden", "message": "no", "details": [], "trace_id": "x"}
    assert json.loads(protocol.reply_error(None, "t", error))["error"] == error


def test_presence_state_and_diffs() -> None:
    state = protocol.state_of([("ann", {"ref": "1"}), ("ann", {"ref": "2"}), ("bob", {"ref": "3"})])
    assert state == {
        "ann": {"metas": [{"ref": "1"}, {"ref": "2"}]},
        "bob": {"metas": [{"ref": "3"}]},
    }
    diffs = protocol.diffs(
        joins=[("c1", "ann", {"ref": "1"})],
        leaves=[("c1", "bob", {"ref": "3"}), ("c2", "bob", {"ref": "4"})],
    )
    assert diffs == {
        "c1": {
            "joins": {"ann": {"metas": [{"ref": "1"}]}},
            "leaves": {"bob": {"metas": [{"ref": "3"}]}},
        },
        "c2": {"joins": {}, "leaves": {"bob": {"metas": [{"ref": "4"}]}}},
    }
