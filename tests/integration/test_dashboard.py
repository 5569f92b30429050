"""The dashboard over real HTTP: access, pages, the retry button's CSRF check, escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query
from support.tokens import SECRET, claims, hs256

pytestmark = pytest.mark.integration

MANIFEST = """
module: d
actions:
  - name: d.start
    handler: PKG.handlers:start
    triggers: [{api: POST /start}]
  - name: d.child
    handler: PKG.handlers:child
    triggers: [{event: d.started}]
  - name: d.broken
    handler: PKG.handlers:broken
    retry: {attempts: 1}
    triggers: [{event: job.broken}]
  - name: d.nightly
    handler: PKG.handlers:child
    run_as: system
    triggers: [{cron: "0 3 * * *"}]
"""

HANDLERS = """
async def start(input, ctx):
    ctx.logger.info("starting", note=input.get("note"), password="hunter2")
    ctx.event.emit("d.started", {"note": input.get("note")})
    if input.get("break"):
        await ctx.queue.push("broken", {})
    return {"ok": True}

async def child(input, ctx):
    ctx.logger.info("child ran")

async def broken(input, ctx):
    raise RuntimeError("always")
"""

CONFIG = f"""
app: d
auth: {{jwt: {{secret: {SECRET}}}, roles: {{ops: [dashboard:view]}}}}
runs: {{flush_interval_seconds: 0.05, sample_rate: 1}}  # every run stored, to look at
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"d.yaml": MANIFEST}, HANDLERS, config=CONFIG)
    async with serving(config, empty_database) as client:
        yield client


def operator(app: Client) -> Client:
    return app.as_(hs256(claims(sub="op-1", roles=["ops"])))


async def test_the_dashboard_asks_for_a_token_with_its_permission(app: Client) -> None:
    status, body, _ = await app.get("/_dashboard")
    assert status == 401
    assert "Sign in" in body
    status, body, _ = await app.as_(hs256(claims(sub="u-1"))).get("/_dashboard/jobs")
    assert status == 401
    assert "lacks the permission" in body
    status, body, _ = await app.as_("not-a-token").get("/_dashboard")
    assert status == 401


async def test_signing_in_sets_a_strict_http_only_cookie(app: Client) -> None:
    token = hs256(claims(sub="op-1", roles=["ops"]))
    status, _, response = await app.post(
        "/_dashboard/login", data={"token": token}, allow_redirects=False
    )
    assert status == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/_dashboard" in cookie
    # aiohttp's client keeps no cookies for a bare IP address: send it back by hand.
    session = cookie.split(";")[0]
    status, body, response = await app.get("/_dashboard/runs", headers={"Cookie": session})
    assert status == 200
    assert "<h1>Runs</h1>" in body
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_forms_posted_from_another_site_are_refused(app: Client) -> None:
    token = hs256(claims(sub="op-1", roles=["ops"]))
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, body, response = await app.post(
            "/_dashboard/login", data={"token": token}, headers=headers, allow_redirects=False
        )
        assert status == 403, headers
        assert "another site" in body
        assert "Set-Cookie" not in response.headers
    sibling = {"Sec-Fetch-Site": "same-site"}  # another subdomain of the same site
    status, _, _ = await app.post(
        "/_dashboard/login", data={"token": token}, headers=sibling, allow_redirects=False
    )
    assert status == 403
    # Behind a proxy that rewrites Host, Origin names the public host: the browser's
    # Sec-Fetch-Site is what counts.
    proxied = {"Origin": "https://ops.example.com", "Sec-Fetch-Site": "same-origin"}
    status, _, _ = await app.post(
        "/_dashboard/login", data={"token": token}, headers=proxied, allow_redirects=False
    )
    assert status == 303


async def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(
    tmp_path: Path, empty_database: str
) -> None:
    proxied = CONFIG + "server: {trusted_proxies: [127.0.0.1/32]}\n"
    config, _ = write_app(tmp_path, {"d.yaml": MANIFEST}, HANDLERS, config=proxied)
    token = hs256(claims(sub="op-1", roles=["ops"]))
    async with serving(config, empty_database) as client:
        cookies = []
        for proto in ("https", "http"):
            _, _, response = await client.post(
                "/_dashboard/login",
                data={"token": token},
                headers={"X-Forwarded-Proto": proto},
                allow_redirects=False,
            )
            cookies.append(response.headers["Set-Cookie"])
    assert "Secure" in cookies[0]
    assert "Secure" not in cookies[1]


async def test_every_page_renders(app: Client, empty_database: str) -> None:
    ops = operator(app)
    await app.post("/start", json={"note": "hi"})
    async with working(app):
        await eventually(
            lambda: query(
                empty_database, "SELECT 1 FROM actions_server.runs WHERE action = 'd.child'"
            )
        )
    for page, expected in (
        ("", "d.start"),
        ("/runs", "d.child"),
        ("/runs?status=ok&trigger=event&since_hours=1", "d.child"),
        ("/jobs?status=queued", "No queued jobs"),
        ("/cron", "0 3 * * *"),
        ("/events", "d.started"),
        ("/mail", "The outbox is empty"),
    ):
        status, body, _ = await ops.get("/_dashboard" + page)
        assert status == 200, (page, body)
        assert expected in body, page
    status, body, _ = await ops.get("/_dashboard/runs?status=nonsense")
    assert status == 400
    assert "status is one of" in body
    status, body, _ = await ops.get("/_dashboard/run/not-a-uuid")
    assert status == 400


async def test_runs_are_filtered_by_a_time_range(app: Client, empty_database: str) -> None:
    ops = operator(app)
    await app.post("/start", json={"note": "hi"})
    await eventually(lambda: query(empty_database, "SELECT 1 FROM actions_server.runs"))

    async def listed(**times: str) -> int:
        status, body, _ = await ops.get("/_dashboard/runs", params={"action": "d.start", **times})
        assert status == 200, body
        return str(body).count('class="run-link"')

    assert await listed(**{"from": "2000-01-01T00:00"}) == 1
    assert await listed(until="2000-01-01T00:00") == 0
    assert await listed(**{"from": "9999-12-31T23:59"}) == 0
    assert await listed(**{"from": "0001-01-01T00:00", "until": "9999-12-31T23:59"}) == 1
    status, body, _ = await ops.get("/_dashboard/runs", params={"until": "yesterday"})
    assert status == 400
    assert "date and time" in body


async def test_a_run_page_shows_its_log_redacted_and_the_runs_it_caused(
    app: Client, empty_database: str
) -> None:
    ops = operator(app)
    await app.post("/start", json={"note": "<script>alert(1)</script>"})
    async with working(app):
        await eventually(
            lambda: query(
                empty_database, "SELECT 1 FROM actions_server.runs WHERE action = 'd.child'"
            )
        )
    [start] = query(empty_database, "SELECT id FROM actions_server.runs WHERE action = 'd.start'")
    status, body, _ = await ops.get(f"/_dashboard/run/{start['id']}")
    assert status == 200
    assert "starting" in body
    assert "[redacted]" in body
    assert "hunter2" not in body
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body
    child = re.search(r'href="/_dashboard/run/([0-9a-f-]+)" class="child-run">d.child', body)
    assert child is not None
    status, body, _ = await ops.get(f"/_dashboard/run/{child[1]}")
    assert status == 200
    assert 'id="parent-run">d.start' in body


async def test_retry_needs_the_forms_csrf_token(app: Client, empty_database: str) -> None:
    ops = operator(app)
    await app.post("/start", json={"break": True})
    async with working(app):
        await eventually(
            lambda: query(empty_database, "SELECT 1 FROM actions_server.jobs WHERE status = 'dead'")
        )
    [dead] = query(empty_database, "SELECT id FROM actions_server.jobs WHERE status = 'dead'")
    status, body, _ = await ops.get("/_dashboard/jobs?status=dead")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
    assert status == 200
    assert csrf is not None
    url = f"/_dashboard/jobs/{dead['id']}/retry"
    for forged in ("0" * 64, "é" * 64):
        status, body, _ = await ops.post(url, data={"csrf": forged}, allow_redirects=False)
        assert status == 403
    assert query(
        empty_database, "SELECT status FROM actions_server.jobs WHERE id = %s", dead["id"]
    ) == [{"status": "dead"}]
    status, _, response = await ops.post(
        url, data={"csrf": csrf[1], "back": "dead"}, allow_redirects=False
    )
    assert status == 303
    assert "queued+again" in response.headers["Location"]
    assert query(
        empty_database, "SELECT status FROM actions_server.jobs WHERE id = %s", dead["id"]
    ) == [{"status": "queued"}]


async def test_a_failed_runs_traceback_is_a_block_of_its_own(
    app: Client, empty_database: str
) -> None:
    ops = operator(app)
    await app.post("/start", json={"break": True})
    async with working(app):
        await eventually(
            lambda: query(empty_database, "SELECT 1 FROM actions_server.jobs WHERE status = 'dead'")
        )
    [broken] = await eventually(
        lambda: query(
            empty_database, "SELECT id FROM actions_server.runs WHERE action = 'd.broken'"
        )
    )
    status, body, _ = await ops.get(f"/_dashboard/run/{broken['id']}")
    assert status == 200
    block = re.search(r'<pre id="traceback" class="traceback">(.*?)</pre>', body, re.S)
    assert block is not None
    lines = block[1].splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: always"
    error = re.search(r'<pre id="error">(.*?)</pre>', body, re.S)
    assert error is not None
    assert "traceback" not in error[1]  # not again, as a JSON string full of \\n


async def test_finished_jobs_have_their_tabs(app: Client, empty_database: str) -> None:
    ops = operator(app)
    await app.post("/start", json={"break": True})
    async with working(app):
        await eventually(
            lambda: query(empty_database, "SELECT 1 FROM actions_server.jobs WHERE status = 'done'")
        )
    [done] = query(empty_database, "SELECT id FROM actions_server.jobs WHERE status = 'done'")
    status, body, _ = await ops.get("/_dashboard/jobs?status=done")
    assert status == 200
    assert f'id="job-{done["id"]}"' in body
    assert 'class="done current"' in body
    status, body, _ = await ops.get("/_dashboard/jobs?status=cancelled")
    assert (status, "No cancelled jobs" in body) == (200, True)


async def test_run_now_queues_a_cron_tick_behind_the_csrf_token(
    app: Client, empty_database: str
) -> None:
    ops = operator(app)
    status, body, _ = await ops.get("/_dashboard/cron")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', body)
    assert status == 200
    assert csrf is not None
    assert 'action="/_dashboard/cron/d.nightly/run"' in body
    url = "/_dashboard/cron/d.nightly/run"
    status, _, _ = await ops.post(url, data={"csrf": "0" * 64}, allow_redirects=False)
    assert status == 403
    assert query(empty_database, "SELECT 1 FROM actions_server.jobs") == []
    status, _, response = await ops.post(url, data={"csrf": csrf[1]}, allow_redirects=False)
    assert status == 303
    assert "d.nightly+queued+to+run+now" in response.headers["Location"]
    async with working(app):
        [run] = await eventually(
            lambda: query(
                empty_database,
                "SELECT trigger, status FROM actions_server.runs WHERE action = 'd.nightly'",
            )
        )
    assert run == {"trigger": "cron", "status": "ok"}
    status, _, _ = await ops.post(
        "/_dashboard/cron/d.start/run", data={"csrf": csrf[1]}, allow_redirects=False
    )
    assert status == 404  # not a cron action


async def test_the_dashboard_can_be_turned_off(tmp_path: Path, empty_database: str) -> None:
    config, _ = write_app(
        tmp_path, {"d.yaml": MANIFEST}, HANDLERS, config=CONFIG + "dashboard: {enabled: false}\n"
    )
    async with serving(config, empty_database) as client:
        status, _, _ = await operator(client).get("/_dashboard")
    assert status == 404
