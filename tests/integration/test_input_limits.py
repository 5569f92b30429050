"""The limits every JSON input meets at the door: nesting depth, integers beyond 64
bits, query strings that are not UTF-8. Each is a 400 that says what is wrong;
none reaches the handler, and nothing is silently changed on the way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actions_server.jsonutil import MAX_DEPTH
from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

MANIFEST = """
module: e
actions:
  - name: e.echo
    handler: PKG.handlers:echo
    triggers: [{api: POST /echo}]
  - name: e.count
    handler: PKG.handlers:echo
    input:
      type: object
      properties: {n: {type: integer}, x: {type: number}, s: {type: string}}
    triggers: [{api: GET /count}]
"""

HANDLERS = """
async def echo(input, ctx):
    return input
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"e.yaml": MANIFEST}, HANDLERS)
    async with serving(config, empty_database) as client:
        yield client


def nested(depth: int) -> str:
    """An object whose value `v` is nested in `depth` levels in all (the object included)."""
    return '{"v": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


async def test_input_nested_deeper_than_the_limit_is_a_400(app: Client) -> None:
    headers = {"content-type": "application/json"}
    status, body, _ = await app.post("/echo", data=nested(MAX_DEPTH), headers=headers)
    assert status == 200, body  # at the limit: accepted and echoed back whole
    for depth in (MAX_DEPTH + 1, 300, 1000):
        status, body, _ = await app.post("/echo", data=nested(depth), headers=headers)
        assert (status, body["error"]["code"]) == (400, "unsupported_json"), depth
        assert f"nested deeper than {MAX_DEPTH} levels" in body["error"]["message"]


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "1" + "0" * 40])
async def test_integers_beyond_64_bits_are_refused_not_rounded(app: Client, number: str) -> None:
    status, body, _ = await app.post(
        "/echo", data=f'{{"n": {number}}}', headers={"content-type": "application/json"}
    )
    assert (status, body["error"]["code"]) == (400, "unsupported_json")
    assert "beyond 64 bits; send it as a string" in body["error"]["message"]


async def test_integers_within_64_bits_and_long_digit_strings_pass_exactly(app: Client) -> None:
    text = '{"max": 18446744073709551615, "min": -9223372036854775808, "id": "123456789012345678901234"}'
    status, body, _ = await app.post(
        "/echo", data=text, headers={"content-type": "application/json"}
    )
    assert status == 200, body
    assert body == {"max": 2**64 - 1, "min": -(2**63), "id": "123456789012345678901234"}


async def test_query_integers_beyond_64_bits_are_not_coerced(app: Client) -> None:
    status, body, _ = await app.get("/count?n=18446744073709551616")
    assert status == 400
    assert body["error"]["details"][0]["path"] == "/n"
    status, body, _ = await app.get("/count?x=18446744073709551616")
    assert status == 400  # as a float it would silently change
    status, body, _ = await app.get("/count?n=18446744073709551615")
    assert (status, body) == (200, {"n": 2**64 - 1})


async def test_a_query_string_that_is_not_utf8_is_a_400(app: Client) -> None:
    status, body, _ = await app.get("/count?s=%ff%fe")
    assert (status, body["error"]["code"]) == (400, "malformed_query")
    status, body, _ = await app.get("/count?s=%EF%BF%BD%C3%A9")  # a real U+FFFD is fine
    assert (status, body) == (200, {"s": "\ufffdé"})


SECRET_MANIFEST = """
module: s
actions:
  - name: s.apply
    handler: PKG.handlers:echo
    input:
      type: object
      properties: {ssn: {type: integer}, bio: {type: string, maxLength: 10}}
    triggers: [{api: POST /apply}]
"""


async def test_a_400_never_echoes_a_configured_secret_or_the_whole_input(
    tmp_path: Path, empty_database: str
) -> None:
    config, _ = write_app(
        tmp_path,
        {"s.yaml": SECRET_MANIFEST},
        HANDLERS,
        config="app: s\nruns: {redact_keys: [password, ssn]}\n",
    )
    async with serving(config, empty_database) as client:
        status, body, _ = await client.post(
            "/apply", json={"ssn": "123-45-6789", "bio": "y" * 1_000_000}
        )
    assert status == 400
    text = str(body)
    assert "123-45" not in text
    assert len(text) < 1000  # the megabyte of input is not sent back
    by_path = {d["path"]: d["message"] for d in body["error"]["details"]}
    assert by_path["/ssn"] == 'the value is not of type "integer"'
    assert by_path["/bio"].endswith("(1000000 characters) is longer than 10 characters")
