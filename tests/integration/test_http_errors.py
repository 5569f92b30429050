"""Every status code of docs/http.md#errors through a real socket, with the one error body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

MANIFEST = """
module: probe
prefix: /probe
actions:
  - name: probe.echo
    handler: PKG.handlers:echo
    input:
      type: object
      properties:
        n: {type: integer}
        x: {type: number}
        flag: {type: boolean}
        tags: {type: array, items: {type: integer}}
        word: {type: string}
        id: {type: integer}
    triggers:
      - api: POST /echo
      - api: GET /echo/{id}
  - name: probe.raises
    handler: PKG.handlers:raises
    input:
      type: object
      properties: {kind: {type: string}}
    triggers: [{api: "GET /raise/:kind"}]
  - name: probe.badOutput
    handler: PKG.handlers:bad_output
    output:
      type: object
      required: [ok]
      properties: {ok: {type: boolean}}
    triggers: [{api: GET /bad-output}]
  - name: probe.types
    handler: PKG.handlers:types
    triggers: [{api: GET /types}]
"""

HANDLERS = """
import datetime, decimal, uuid
from actions_server import ActionError, BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized

async def echo(input, ctx):
    return {"input": input, "trace_id": ctx.run.trace_id, "trigger": ctx.run.trigger}

ERRORS = {
    "bad": BadRequest("nope"),
    "unauthorized": Unauthorized("who are you"),
    "forbidden": Forbidden("not you"),
    "notfound": NotFound("not here"),
    "conflict": Conflict("clash"),
    "toomany": TooManyRequests("slow down", retry_after=7),
    "custom": ActionError(402, "payment_required", "pay first"),
}

async def raises(input, ctx):
    kind = input["kind"]
    if kind in ERRORS:
        raise ERRORS[kind]
    raise RuntimeError("secret internals: password=hunter2")

async def bad_output(input, ctx):
    return {"ok": "yes"}

async def types(input, ctx):
    return {
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 1, 2),
        "price": decimal.Decimal("12.50"),
    }
"""


@pytest.fixture
async def client(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"probe.yaml": MANIFEST},
        HANDLERS,
        config="app: probe\nserver: {max_body_bytes: 1000}\n",
    )
    async with serving(config, database) as c:
        yield c


def assert_error_body(body: dict, code: str, trace_id: str) -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details", "trace_id"}
    assert error["code"] == code
    assert error["trace_id"] == trace_id
    assert isinstance(error["message"], str)
    assert error["message"]


async def test_input_merges_query_body_and_path_with_coercion(client: Client) -> None:
    status, body, _ = await client.request(
        "GET", "/probe/echo/42?n=7&x=2.5&flag=true&tags=1&tags=2&word=007"
    )
    assert status == 200
    assert body["input"] == {
        "n": 7,
        "x": 2.5,
        "flag": True,
        "tags": [1, 2],
        "word": "007",
        "id": 42,
    }
    assert body["trigger"] == "api"


async def test_body_wins_over_query_and_path_wins_over_body(client: Client) -> None:
    status, body, _ = await client.request("POST", "/probe/echo?n=1&word=q", json={"n": 2})
    assert status == 200
    assert body["input"] == {"n": 2, "word": "q"}
    status, body, _ = await client.request("GET", "/probe/echo/7?id=8", json={"id": 9, "n": 3})
    assert status == 200
    assert body["input"] == {"id": 7, "n": 3}


async def test_uncoercible_query_value_is_a_400_naming_the_field(client: Client) -> None:
    status, body, response = await client.get("/probe/echo/1?flag=maybe&n=x")
    assert status == 400
    assert_error_body(body, "validation_failed", response.headers["x-trace-id"])
    assert {d["path"] for d in body["error"]["details"]} == {"/flag", "/n"}


async def test_uncoercible_path_value_is_a_400_naming_the_field(client: Client) -> None:
    status, body, _ = await client.get("/probe/echo/abc")
    assert status == 400
    assert [d["path"] for d in body["error"]["details"]] == ["/id"]


async def test_malformed_json_is_400(client: Client) -> None:
    status, body, response = await client.post(
        "/probe/echo", data=b'{"n": 1,', headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert_error_body(body, "malformed_json", response.headers["x-trace-id"])


async def test_json_that_is_not_an_object_is_400(client: Client) -> None:
    status, body, _ = await client.post("/probe/echo", json=[1, 2])
    assert status == 400
    assert body["error"]["code"] == "malformed_json"


async def test_wrong_content_type_is_415(client: Client) -> None:
    status, body, response = await client.post(
        "/probe/echo", data="n=1", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    assert_error_body(body, "unsupported_media_type", response.headers["x-trace-id"])


async def test_body_over_the_limit_is_413(client: Client) -> None:
    status, body, response = await client.post("/probe/echo", json={"word": "x" * 2000})
    assert status == 413
    assert_error_body(body, "payload_too_large", response.headers["x-trace-id"])


async def test_chunked_body_over_the_limit_is_413(client: Client) -> None:
    async def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * 200

    status, body, _ = await client.post(
        "/probe/echo", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


async def test_unknown_route_is_404(client: Client) -> None:
    status, body, response = await client.get("/nowhere")
    assert status == 404
    assert_error_body(body, "route_not_found", response.headers["x-trace-id"])


async def test_wrong_method_is_405_with_allow(client: Client) -> None:
    status, body, response = await client.request("DELETE", "/probe/echo")
    assert status == 405
    assert response.headers["Allow"] == "POST"
    assert_error_body(body, "method_not_allowed", response.headers["x-trace-id"])
    status, _, response = await client.request("PUT", "/probe/echo/3")
    assert (status, response.headers["Allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("bad", 400, "bad_request"),
        ("unauthorized", 401, "unauthorized"),
        ("forbidden", 403, "forbidden"),
        ("notfound", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("toomany", 429, "rate_limited"),
        ("custom", 402, "payment_required"),
    ],
)
async def test_handler_errors_map_to_their_status(
    client: Client, kind: str, status: int, code: str
) -> None:
    got, body, response = await client.get(f"/probe/raise/{kind}")
    assert got == status
    assert_error_body(body, code, response.headers["x-trace-id"])
    if kind == "toomany":
        assert response.headers["Retry-After"] == "7"


async def test_unhandled_exception_is_500_without_its_text(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    status, body, response = await client.get("/probe/raise/boom")
    assert status == 500
    trace_id = response.headers["x-trace-id"]
    assert_error_body(body, "internal_error", trace_id)
    assert "hunter2" not in str(body)
    assert "RuntimeError" not in str(body)
    logged = [r for r in caplog.records if getattr(r, "trace_id", None) == trace_id]
    assert logged
    assert logged[0].exc_info is not None
    assert "hunter2" in str(logged[0].exc_info[1])


async def test_invalid_output_is_500_invalid_output_and_logged(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    status, body, response = await client.get("/probe/bad-output")
    assert status == 500
    assert_error_body(body, "invalid_output", response.headers["x-trace-id"])
    assert body["error"]["details"] == []
    [record] = [
        r for r in caplog.records if r.getMessage() == "output does not match the output schema"
    ]
    assert record.fields["errors"][0]["path"] == "/ok"


async def test_database_types_serialise_to_json(client: Client) -> None:
    status, body, _ = await client.get("/probe/types")
    assert status == 200
    assert body == {
        "uuid": "12345678-1234-5678-1234-567812345678",
        "when": "2024-01-02T03:04:05+00:00",
        "day": "2024-01-02",
        "price": 12.50,
    }


async def test_caller_trace_id_is_kept(client: Client) -> None:
    status, body, response = await client.post(
        "/probe/echo", json={}, headers={"x-trace-id": "abc-123-def-456"}
    )
    assert status == 200
    assert body["trace_id"] == response.headers["x-trace-id"] == "abc-123-def-456"


async def test_builtin_endpoints_carry_a_trace_id(client: Client) -> None:
    for path, expected in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        status, body, response = await client.get(path)
        assert (status, body) == (200, expected)
        assert response.headers["x-trace-id"]
