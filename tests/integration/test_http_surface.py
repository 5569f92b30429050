"""The HTTP surface a browser front end needs, through real sockets: CORS, response
control (status, headers, cookies, bytes, streams, redirects), cookie sessions with
CSRF checks and revocation, Idempotency-Key, ctx.request, HEAD."""

from __future__ import annotations

import asyncio
import hashlib
import resource
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query
from support.tokens import SECRET

pytestmark = pytest.mark.integration

ORIGIN = "https://app.example.com"

MANIFEST = """
module: s
actions:
  - name: s.orders.create
    handler: PKG.handlers:create_order
    input:
      type: object
      required: [item]
      properties: {item: {type: string}}
    output:
      type: object
      required: [id, item]
      properties: {id: {type: integer}, item: {type: string}}
    triggers: [{api: POST /orders, status: 201}]
  - name: s.orders.list
    handler: PKG.handlers:list_orders
    guards: [authenticated]
    triggers: [{api: GET /orders}]
  - name: s.crash
    handler: PKG.handlers:crash
    triggers: [{api: POST /crash}]
  - name: s.nothing
    handler: PKG.handlers:nothing
    triggers: [{api: DELETE /things/:id}]
  - name: s.bytes
    handler: PKG.handlers:as_bytes
    triggers: [{api: GET /report.csv}]
  - name: s.stream
    handler: PKG.handlers:big_stream
    triggers: [{api: GET /big}]
  - name: s.go
    handler: PKG.handlers:go
    triggers: [{api: POST /go}]
  - name: s.cookies
    handler: PKG.handlers:cookies
    triggers: [{api: GET /cookies}]
  - name: s.login
    handler: PKG.handlers:login
    triggers: [{api: POST /login}]
  - name: s.logout
    handler: PKG.handlers:logout
    guards: [authenticated]
    triggers: [{api: POST /logout}]
  - name: s.me
    handler: PKG.handlers:me
    guards: [authenticated]
    triggers: [{api: GET /me}, {api: POST /me}]
  - name: s.echo_request
    handler: PKG.handlers:echo_request
    triggers: [{api: POST /echo-request}]
  - name: s.slow_create
    handler: PKG.handlers:slow_create
    triggers: [{api: POST /slow-orders, status: 201}]
  - name: s.not_idempotent
    handler: PKG.handlers:create_order
    idempotency: false
    triggers: [{api: POST /plain-orders, status: 201}]
  - name: s.job_response
    handler: PKG.handlers:create_order
    triggers: [{event: job.order}]
  - name: s.push_order
    handler: PKG.handlers:push_order
    triggers: [{api: POST /push-order}]
  - name: s.wrong_body
    handler: PKG.handlers:wrong_body
    output: {type: object, required: [id], properties: {id: {type: integer}}}
    triggers: [{api: GET /wrong-body}]
"""

HANDLERS = """
import asyncio
import datetime
from actions_server import Response, Cookie

async def create_order(input, ctx):
    [row] = await ctx.db.raw("INSERT INTO orders (item) VALUES (%s) RETURNING id, item", input["item"])
    return Response(row, status=201, headers={"Location": f"/orders/{row['id']}"})

async def push_order(input, ctx):
    await ctx.queue.push("order", {"item": input["item"]})

async def wrong_body(input, ctx):
    return Response({"id": "not a number"}, status=201)

async def slow_create(input, ctx):
    [row] = await ctx.db.raw("INSERT INTO orders (item) VALUES (%s) RETURNING id, item", input["item"])
    await asyncio.sleep(input.get("sleep", 1))
    return row

async def list_orders(input, ctx):
    return {"orders": await ctx.db.raw("SELECT id, item FROM orders ORDER BY id")}

async def crash(input, ctx):
    raise RuntimeError("boom")

async def nothing(input, ctx):
    return None

async def as_bytes(input, ctx):
    return Response(b"a,b\\n1,2\\n", content_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="report.csv"'})

async def big_stream(input, ctx):
    async def chunks():
        block = b"x" * 65536
        for _ in range(320):  # 20 MiB
            yield block
    return Response(chunks(), content_type="application/octet-stream", content_length=320 * 65536)

async def go(input, ctx):
    return Response.redirect("/orders")

async def cookies(input, ctx):
    return Response({"ok": True}, cookies=[
        Cookie(name="plain", value="1"),
        Cookie(name="strict", value="2", secure=True, same_site="Strict", http_only=True,
               max_age=60, path="/x", domain="example.com"),
        Cookie(name="gone", value="", max_age=0,
               expires=datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)),
    ])

async def login(input, ctx):
    token = ctx.auth.login(input["user"], roles=["member"])
    return {"token": token}

async def logout(input, ctx):
    await ctx.auth.logout()

async def me(input, ctx):
    return {"user": ctx.auth.user_id}

async def echo_request(input, ctx):
    request = ctx.request
    return {"method": request.method, "path": request.path, "client": request.client,
            "body": request.body.decode(), "header": request.header("x-custom"),
            "query": dict(request.query)}
"""

CONFIG = f"""
app: s
database: {{url: "${{DATABASE_URL:-embedded}}"}}
auth:
  jwt: {{secret: {SECRET}}}
  session: {{cookie: sid, secure: false}}
server:
  cors: {{origins: ["{ORIGIN}"], credentials: true}}
"""

MIGRATION = "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL);"


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path, {"s.yaml": MANIFEST}, HANDLERS, config=CONFIG, migrations={"001.sql": MIGRATION}
    )
    async with serving(config, empty_database) as client:
        yield client


def orders(dsn: str) -> list[str]:
    return [r["item"] for r in query(dsn, "SELECT item FROM orders ORDER BY id")]


# --- CORS --------------------------------------------------------------------------------


async def preflight(app: Client, path: str, origin: str = ORIGIN, **headers: str):
    return await app.request(
        "OPTIONS",
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", **headers},
    )


async def test_a_preflight_to_an_existing_route_is_204_before_guards(app: Client) -> None:
    status, _, response = await preflight(
        app,
        "/orders",
        **{"Access-Control-Request-Headers": "authorization, content-type, x-org-id"},
    )
    assert status == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == ORIGIN  # echoed, never * with credentials
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "POST"}
    assert "x-org-id" in headers["Access-Control-Allow-Headers"]
    assert "Origin" in headers["Vary"]


async def test_refused_preflights(app: Client) -> None:
    status, body, response = await preflight(app, "/nowhere")
    assert (status, body["error"]["code"]) == (404, "route_not_found")
    status, body, response = await preflight(app, "/orders", origin="https://evil.example")
    assert status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    status, _, response = await preflight(
        app, "/orders", **{"Access-Control-Request-Headers": "x-not-allowed"}
    )
    assert status == 403


async def test_every_answer_carries_the_cors_headers(app: Client) -> None:
    browser = app.as_(Origin=ORIGIN)
    for method, path, expected in (
        ("GET", "/orders", 401),
        ("POST", "/crash", 500),
        ("POST", "/orders", 400),
        ("GET", "/nowhere", 404),
        ("POST", "/orders", 201),
    ):
        kwargs = {"json": {"item": "tea"}} if expected == 201 else {}
        status, _, response = await browser.request(method, path, **kwargs)
        assert status == expected
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN, path
        assert "x-trace-id" in response.headers["Access-Control-Expose-Headers"]
        assert response.headers["Vary"] == "Origin"
    _, _, response = await app.as_(Origin="https://evil.example").get("/orders")
    assert "Access-Control-Allow-Origin" not in response.headers


# --- response control --------------------------------------------------------------------


async def test_201_with_location_and_the_output_schema_on_the_body(
    app: Client, empty_database: str
) -> None:
    status, body, response = await app.post("/orders", json={"item": "tea"})
    assert (status, body) == (201, {"id": 1, "item": "tea"})
    assert response.headers["Location"] == "/orders/1"


async def test_204_bytes_and_redirects(app: Client) -> None:
    status, body, response = await app.delete("/things/1")
    assert (status, body) == (204, None)
    status, body, response = await app.get("/report.csv")
    assert (status, body) == (200, "a,b\n1,2\n")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
    status, _, response = await app.post("/go", allow_redirects=False)
    assert (status, response.headers["Location"]) == (303, "/orders")


async def test_cookies_carry_every_attribute_as_set(app: Client) -> None:
    _, _, response = await app.get("/cookies")
    set_cookies = response.headers.getall("Set-Cookie")
    by_name = {line.split("=", 1)[0]: line for line in set_cookies}
    assert "HttpOnly" in by_name["plain"]
    assert "SameSite=Lax" in by_name["plain"]
    assert "Path=/" in by_name["plain"]
    strict = by_name["strict"]
    for part in (
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=60",
        "Path=/x",
        "Domain=example.com",
    ):
        assert part in strict, (part, strict)
    assert "Max-Age=0" in by_name["gone"]
    assert "expires=Thu, 01 Jan 1970 00:00:00 GMT" in by_name["gone"]


async def test_a_20_mb_stream_is_sent_in_bounded_memory(app: Client) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    digest, size = hashlib.sha256(), 0
    async with app.session.get(app.base + "/big") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(320 * 65536)
        async for chunk in response.content.iter_chunked(65536):
            digest.update(chunk)
            size += len(chunk)
    assert size == 320 * 65536
    expected = hashlib.sha256()
    for _ in range(320):
        expected.update(b"x" * 65536)
    assert digest.hexdigest() == expected.hexdigest()
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 10 * 1024  # client and server share this process: far below 20 MB


async def test_head_works_on_every_get_route(app: Client) -> None:
    status, body, _response = await app.request("HEAD", "/report.csv")
    assert (status, body) == (200, None)
    status, _, _ = await app.request("HEAD", "/healthz")
    assert status == 200


# --- ctx.request -------------------------------------------------------------------------


async def test_ctx_request_describes_the_http_request(app: Client) -> None:
    status, body, _ = await app.post(
        "/echo-request?a=1", json={"x": 1}, headers={"X-Custom": "yes"}
    )
    assert status == 200, body
    assert body == {
        "method": "POST",
        "path": "/echo-request",
        "client": "127.0.0.1",
        "body": '{"x": 1}',
        "header": "yes",
        "query": {"a": "1"},
    }


# --- cookie sessions, CSRF, revocation --------------------------------------------------


def session_cookie(response) -> str:
    [line] = [c for c in response.headers.getall("Set-Cookie") if c.startswith("sid=")]
    return line.split(";", 1)[0].split("=", 1)[1]


async def test_login_sets_an_http_only_cookie_that_authenticates(app: Client) -> None:
    status, body, response = await app.post("/login", json={"user": "ann"})
    assert status == 200
    [line] = [c for c in response.headers.getall("Set-Cookie") if c.startswith("sid=")]
    assert "HttpOnly" in line
    assert "SameSite=Lax" in line
    cookie = session_cookie(response)
    assert cookie == body["token"]  # the same JWT the API accepts as a bearer token
    status, body, _ = await app.get("/me", headers={"Cookie": f"sid={cookie}"})
    assert (status, body) == (200, {"user": "ann"})
    status, body, _ = await app.as_(cookie).get("/me")
    assert (status, body) == (200, {"user": "ann"})


async def test_a_cookie_request_from_another_site_is_refused(app: Client) -> None:
    _, _, response = await app.post("/login", json={"user": "ann"})
    cookie = {"Cookie": f"sid={session_cookie(response)}"}
    for headers, expected in (
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({}, 403),  # neither header: not a browser; use a bearer token
        ({"Sec-Fetch-Site": "same-origin"}, 200),
        ({"Origin": ORIGIN}, 200),  # allowed by CORS with credentials
    ):
        status, body, _ = await app.post("/me", headers={**cookie, **headers})
        assert status == expected, (headers, body)
        if expected == 403:
            assert body["error"]["code"] == "csrf_refused"
    status, _, _ = await app.get("/me", headers=cookie)  # safe methods need no check
    assert status == 200
    token = session_cookie(response)
    assert (await app.as_(token).post("/me"))[0] == 200  # bearer requests need none


async def test_logout_revokes_the_token_and_clears_the_cookie(app: Client) -> None:
    _, body, response = await app.post("/login", json={"user": "ann"})
    token = body["token"]
    status, _, response = await app.as_(token).post("/logout")
    assert status == 204
    [line] = [c for c in response.headers.getall("Set-Cookie") if c.startswith("sid=")]
    assert "Max-Age=0" in line

    async def refused() -> bool:
        return (await app.as_(token).get("/me"))[0] == 401

    assert await eventually_async(refused)
    status, body, _ = await app.as_(token).get("/me")
    assert body["error"]["message"] == "the token has been revoked"


async def eventually_async(check, seconds: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


# --- Idempotency-Key ---------------------------------------------------------------------


async def test_a_retried_post_with_the_same_key_creates_one_row(
    app: Client, empty_database: str
) -> None:
    keyed = app.as_(**{"Idempotency_Key": "order-123"})
    first = await keyed.post("/orders", json={"item": "tea"})
    again = await keyed.post("/orders", json={"item": "tea"})
    assert first[0] == again[0] == 201
    assert first[1] == again[1] == {"id": 1, "item": "tea"}
    assert again[2].headers["Location"] == "/orders/1"
    assert again[2].headers["Idempotent-Replayed"] == "true"
    assert orders(empty_database) == ["tea"]
    status, body, _ = await keyed.post("/orders", json={"item": "coffee"})
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    other = app.as_(**{"Idempotency_Key": "order-124"})
    assert (await other.post("/orders", json={"item": "coffee"}))[0] == 201
    assert orders(empty_database) == ["tea", "coffee"]


async def test_a_concurrent_duplicate_is_409_and_a_failed_run_keeps_no_receipt(
    app: Client, empty_database: str
) -> None:
    keyed = app.as_(**{"Idempotency_Key": "slow-1"})
    first = asyncio.ensure_future(keyed.post("/slow-orders", json={"item": "tea", "sleep": 1}))
    await asyncio.sleep(0.3)
    status, body, response = await keyed.post("/slow-orders", json={"item": "tea", "sleep": 1})
    assert (status, body.get("error", {}).get("code")) == (409, "idempotency_key_in_use"), body
    assert response.headers["Retry-After"] == "1"
    assert (await first)[0] == 201
    assert orders(empty_database) == ["tea"]
    crash = app.as_(**{"Idempotency_Key": "crash-1"})
    assert (await crash.post("/crash"))[0] == 500
    assert (
        query(empty_database, "SELECT * FROM actions_server.receipts WHERE key = 'crash-1'") == []
    )


async def test_an_action_can_opt_out_of_idempotency_keys(app: Client, empty_database: str) -> None:
    keyed = app.as_(**{"Idempotency_Key": "plain-1"})
    await keyed.post("/plain-orders", json={"item": "a"})
    await keyed.post("/plain-orders", json={"item": "a"})
    assert orders(empty_database) == ["a", "a"]


# --- revocation on every instance --------------------------------------------------------


async def test_a_revoked_user_is_refused_on_every_instance_within_a_second(
    tmp_path: Path, empty_database: str
) -> None:
    config, _ = write_app(
        tmp_path, {"s.yaml": MANIFEST}, HANDLERS, config=CONFIG, migrations={"001.sql": MIGRATION}
    )
    async with serving(config, empty_database) as one, serving(config, empty_database) as two:
        token = one.token("bob")
        old = one.token("ann")
        assert (await one.as_(old).get("/me"))[0] == 200
        assert (await two.as_(old).get("/me"))[0] == 200  # cached as verified on both
        await asyncio.sleep(1.05)  # a later iat: tokens issued after the revocation work
        from click.testing import CliRunner

        from actions_server.cli import main

        result = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            ["token", "revoke", str(config), "--user", "ann"],
            env={"DATABASE_URL": empty_database},
        )
        assert result.exit_code == 0, result.output
        revoked_at = asyncio.get_running_loop().time()

        async def refused_on_both() -> bool:
            return (await one.as_(old).get("/me"))[0] == 401 and (await two.as_(old).get("/me"))[
                0
            ] == 401

        assert await eventually_async(refused_on_both, seconds=5)
        assert asyncio.get_running_loop().time() - revoked_at < 1.5
        await asyncio.sleep(1.05)  # iat counts whole seconds: a token of the same second is refused
        assert (await one.as_(one.token("ann")).get("/me"))[0] == 200  # issued after
        assert (await two.as_(token).get("/me"))[0] == 200  # another user


async def test_a_response_body_meets_the_output_schema(app: Client, empty_database: str) -> None:
    status, body, _ = await app.get("/wrong-body")
    assert (status, body["error"]["code"]) == (500, "invalid_output")


async def test_a_response_returned_to_a_job_is_unwrapped(app: Client, empty_database: str) -> None:

    assert (await app.post("/push-order", json={"item": "by job"}))[0] == 204
    async with working(app):
        assert await eventually(lambda: orders(empty_database) == ["by job"])
    [job] = query(empty_database, "SELECT status FROM actions_server.jobs")
    assert job["status"] == "done"
