"""The built-in endpoints go through the same error handling as actions: garbage in a
signed download URL is a 403, an exception anywhere is a 500 in the one error body
with `x-trace-id` and one logged traceback, never aiohttp's own page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

MANIFEST = """
module: f
actions:
  - name: f.put
    handler: PKG.handlers:put
    triggers: [{api: POST /put}]
  - name: f.url
    handler: PKG.handlers:url
    triggers: [{api: GET /url}]
"""

HANDLERS = """
async def put(input, ctx):
    await ctx.storage.upload("docs/a.txt", b"hello")

async def url(input, ctx):
    return {"url": await ctx.storage.get_url("docs/a.txt")}
"""


@pytest.fixture
async def app(tmp_path: Path, database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"f.yaml": MANIFEST},
        HANDLERS,
        config="app: f\nstorage: {backend: local, path: files, url_secret: s3cr3t}\n",
    )
    async with serving(config, database) as client:
        yield client


async def fetch(client: Client, path: str) -> tuple[int, Any, dict[str, str]]:
    async with client.session.get(client.base + path) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, dict(response.headers)


GOOD_SIGNATURE = "0" * 64
BAD_EXPIRES = [
    "\u00b2",  # superscript two: str.isdigit() says yes, int() says no
    "\u0661\u0662\u0663",  # Arabic-Indic digits: int() reads them
    "\U0001d7d7",  # mathematical bold nine
    "9" * 5000,  # past int()'s 4300 digits
    "9" * 40,  # past any timestamp
    "-1",
    "+1",
    " 1",
    "1e10",
    "0x10",
    "1_000",
    "",
    "%00",
    "\u00e9",
]
BAD_SIGNATURES = [
    "\u00e9" * 64,  # non-ASCII: hmac.compare_digest refuses such strings
    "\u0661" * 64,
    "z" * 64,
    "0" * 63,
    "0" * 65,
    "0" * 4000,
    "%00" * 32,
    "",
    "\U0001f600",
]


@pytest.mark.parametrize(
    "query",
    [
        *({"expires": e, "signature": GOOD_SIGNATURE} for e in BAD_EXPIRES),
        *({"expires": "4102444800", "signature": s} for s in BAD_SIGNATURES),
        *({"expires": e, "signature": s} for e in BAD_EXPIRES[:4] for s in BAD_SIGNATURES[:3]),
        {"expires": "4102444800"},
        {"signature": GOOD_SIGNATURE},
        {"expires": ["1", "2"], "signature": GOOD_SIGNATURE},
    ],
    ids=lambda query: ",".join(f"{k}={ascii(v)[:16]}" for k, v in query.items()),
)
async def test_garbage_in_a_signed_url_is_403_invalid_signature(
    app: Client, query: dict[str, Any]
) -> None:
    pairs = [
        (name, value)
        for name, values in query.items()
        for value in (values if isinstance(values, list) else [values])
    ]
    qs = "&".join(f"{quote(n)}={quote(v, safe='%')}" for n, v in pairs)
    status, body, headers = await fetch(app, f"/_storage/docs/a.txt?{qs}")
    assert status == 403, body
    assert body["error"]["code"] == "invalid_signature"
    assert body["error"]["trace_id"] == headers["x-trace-id"]


async def test_a_good_url_still_serves_after_the_garbage(app: Client) -> None:
    await app.post("/put")
    _, body, _ = await app.get("/url")
    async with app.session.get(app.base + body["url"]) as response:
        assert (response.status, await response.read()) == (200, b"hello")


@pytest.mark.parametrize(
    "key",
    ["%00", "a%2F..%2Fb", "..", "a//b", "%ff%fe", "x" * 2000, "%E2%80%AE"],
    ids=lambda key: ascii(key)[:16],
)
async def test_garbage_in_the_key_is_refused_in_the_error_body(app: Client, key: str) -> None:
    status, body, headers = await fetch(
        app, f"/_storage/{key}?expires=4102444800&signature={GOOD_SIGNATURE}"
    )
    assert status in (400, 403, 404), body
    assert body["error"]["trace_id"] == headers["x-trace-id"]


BUILTINS = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]


@pytest.mark.parametrize("path", [*BUILTINS, "/_storage/docs/a.txt"])
async def test_an_exception_in_a_builtin_is_a_500_in_the_error_body(
    app: Client, path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    front = app.front
    assert front is not None
    if path.startswith("/_storage/"):
        monkeypatch.setattr(front, "signed_download", broken)
    else:
        monkeypatch.setitem(front.builtins, path, broken)
    status, body, headers = await fetch(app, path)
    assert status == 500, body
    assert body["error"]["code"] == "internal_error"
    assert "hunter2" not in str(body)
    trace_id = headers["x-trace-id"]
    assert body["error"]["trace_id"] == trace_id
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert getattr(logged[0], "trace_id", None) == trace_id
    assert logged[0].exc_info is not None


async def test_readyz_whose_database_check_raises(
    app: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def ready() -> bool:
        raise OSError("the socket went away")

    monkeypatch.setattr(app.runtime.database, "ready", ready)
    status, body, headers = await fetch(app, "/readyz")
    assert status == 500, body
    assert body["error"]["trace_id"] == headers["x-trace-id"]
