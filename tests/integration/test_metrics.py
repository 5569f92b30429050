"""GET /metrics: counters that move, queue depths, access, and several workers."""

from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from support.apps import Client, serving, working, write_app
from support.processes import Served, free_port, http

pytestmark = pytest.mark.integration

MANIFEST = """
module: m
actions:
  - name: m.hello
    handler: PKG.handlers:hello
    triggers: [{api: GET /hello}]
  - name: m.fail
    handler: PKG.handlers:fail
    triggers: [{api: GET /fail}]
  - name: m.emit
    handler: PKG.handlers:emit
    triggers: [{api: POST /emit}]
  - name: m.onPing
    handler: PKG.handlers:hello
    triggers: [{event: m.ping}]
"""

HANDLERS = """
async def hello(input, ctx):
    return {"hello": "world"}

async def fail(input, ctx):
    raise RuntimeError("no")

async def emit(input, ctx):
    ctx.event.emit("m.ping")
    return {"ok": True}
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"m.yaml": MANIFEST}, HANDLERS)
    async with serving(config, empty_database) as client:
        yield client


def value(text: str, name: str, **labels: str) -> float:
    """One sample of the exposition text (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match[1] or "").split(","))) == wanted:
            return float(match[2])
    return 0.0


async def scrape(client: Client) -> str:
    status, body, response = await client.get("/metrics")
    assert status == 200, body
    assert response.headers["Content-Type"].startswith("text/plain")
    return str(body)


async def scrape_until(client: Client, check: Callable[[str], bool], seconds: float = 10) -> str:
    deadline = time.monotonic() + seconds
    while True:
        text = await scrape(client)
        if check(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)


async def test_request_and_run_counters_move(app: Client) -> None:
    before = await scrape(app)
    for _ in range(3):
        assert (await app.get("/hello"))[0] == 200
    assert (await app.get("/fail"))[0] == 500
    assert (await app.get("/nowhere"))[0] == 404
    after = await scrape(app)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("actions_server_http_requests_total", action="m.hello", status="200") == 3
    assert moved("actions_server_http_requests_total", action="m.fail", status="500") == 1
    assert moved("actions_server_http_requests_total", action="", status="404") == 1
    duration = "actions_server_http_request_duration_seconds_count"
    assert moved(duration, action="m.hello", status="200") == 3
    assert moved(duration, action="m.fail", status="500") == 1
    assert moved("actions_server_runs_total", action="m.hello", trigger="api", outcome="ok") == 3
    assert moved("actions_server_runs_total", action="m.fail", trigger="api", outcome="error") == 1


async def test_queue_depth_event_deliveries_and_job_wait(app: Client) -> None:
    before = await scrape(app)
    for _ in range(2):
        assert (await app.post("/emit"))[0] == 200
    queued = await scrape(app)
    assert value(queued, "actions_server_jobs", state="queued") == 2
    delivered = value(queued, "actions_server_event_deliveries_total", event="m.ping")
    assert delivered - value(before, "actions_server_event_deliveries_total", event="m.ping") == 2
    ran = {"action": "m.onPing", "trigger": "event", "outcome": "ok"}
    async with working(app):
        drained = await scrape_until(
            app,
            lambda text: (
                value(text, "actions_server_runs_total", **ran)
                - value(before, "actions_server_runs_total", **ran)
                == 2
            ),
        )
    assert value(drained, "actions_server_jobs", state="queued") == 0
    waited = value(drained, "actions_server_job_wait_seconds_count") - value(
        before, "actions_server_job_wait_seconds_count"
    )
    assert waited == 2


async def test_metrics_are_refused_outside_the_allowed_networks(
    tmp_path: Path, empty_database: str
) -> None:
    config, _ = write_app(
        tmp_path, {"m.yaml": MANIFEST}, HANDLERS, config="app: m\nmetrics: {allow: [10.0.0.0/8]}\n"
    )
    async with serving(config, empty_database) as client:
        status, body, _ = await client.get("/metrics")
    assert (status, body["error"]["code"]) == (403, "forbidden")


async def test_a_proxy_on_this_host_cannot_make_outside_clients_local(app: Client) -> None:
    for outside in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"X-Forwarded-For": "127.0.0.1, 203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"Via": "1.1 proxy"},
        {"X-Forwarded-Proto": "https"},
    ):
        status, body, _ = await app.get("/metrics", headers=outside)
        assert (status, body["error"]["code"]) == (403, "forbidden"), outside
    status, _, _ = await app.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert status == 200


@pytest.mark.timeout(120)
def test_a_scrape_adds_up_every_worker(tmp_path: Path, empty_database: str) -> None:
    config, _ = write_app(
        tmp_path,
        {"m.yaml": MANIFEST},
        HANDLERS,
        config="app: m\ndatabase: {url: '${DATABASE_URL}'}\n",
    )
    port = free_port()
    env = {**os.environ, "DATABASE_URL": empty_database}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    served = Served(
        ["serve", str(config), "--port", str(port), "--workers", "2", "--no-worker"],
        tmp_path,
        env,
        tmp_path / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        served.wait_until_healthy(base)
        deadline = time.monotonic() + 30
        while served.output().count("serving m on") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # both workers up, so that both take requests
        for _ in range(40):  # SO_REUSEPORT spreads the connections over both workers
            assert http("GET", base + "/hello")[0] == 200
        for _ in range(50):  # the other worker shares its counts once a second
            with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
                text = response.read().decode()
            labels = {"action": "m.hello", "status": "200"}
            if value(text, "actions_server_http_requests_total", **labels) == 40:
                break
            time.sleep(0.1)
    finally:
        assert served.stop() == 0, served.output()
    assert value(text, "actions_server_http_requests_total", action="m.hello", status="200") == 40
