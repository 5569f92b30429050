"""The dashboard in a real browser: headless Chromium driven by Selenium.

Signs in with a token, opens every page, follows a run to the run it caused,
clicks Retry on a dead job, and saves a screenshot of each page under
.ci/artifacts/ (CI keeps them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from browser_support import ARTIFACTS, blocking

from support.apps import Client, serving, working, write_app
from support.polling import eventually, query
from support.tokens import SECRET, claims, hs256

pytestmark = [pytest.mark.integration, pytest.mark.browser]

T = TypeVar("T")

MANIFEST = """
module: shop
actions:
  - name: shop.order
    handler: PKG.handlers:order
    triggers: [{api: POST /orders}]
  - name: shop.onOrdered
    handler: PKG.handlers:on_ordered
    triggers: [{event: shop.ordered}]
  - name: shop.charge
    handler: PKG.handlers:charge
    retry: {attempts: 1}
    triggers: [{event: job.charge}]
  - name: shop.nightly
    handler: PKG.handlers:on_ordered
    run_as: system
    triggers: [{cron: "0 3 * * *"}]
"""

HANDLERS = """
async def order(input, ctx):
    ctx.logger.info("order placed", items=input.get("items", 1), card_token="tok_123")
    ctx.event.emit("shop.ordered", {"items": input.get("items", 1)})
    await ctx.queue.push("charge", {"amount": 42})
    return {"ok": True}

async def on_ordered(input, ctx):
    ctx.logger.info("order seen")

async def charge(input, ctx):
    raise RuntimeError("the card was declined")
"""

CONFIG = f"""
app: shop
auth: {{jwt: {{secret: {SECRET}}}, roles: {{ops: [dashboard:view]}}}}
runs: {{flush_interval_seconds: 0.05, sample_rate: 1}}  # every run stored, to look at
"""


@pytest.fixture
async def shop(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"shop.yaml": MANIFEST}, HANDLERS, config=CONFIG)
    async with serving(config, empty_database) as client:
        assert (await client.post("/orders", json={"items": 2}))[0] == 200
        async with working(client):
            await eventually(
                lambda: query(
                    empty_database,
                    "SELECT 1 FROM actions_server.jobs WHERE status = 'dead'"
                    " AND EXISTS (SELECT 1 FROM actions_server.runs WHERE action = 'shop.onOrdered')",
                )
            )
        yield client


@pytest.mark.timeout(180)
async def test_an_operator_walks_the_dashboard(
    browser: Any, shop: Client, empty_database: str
) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    def find(css: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, css)

    def shown_after_click(wanted: str, css: str = "h1") -> str:
        """The text at `css` once it holds `wanted`: a click returns before the
        navigation it starts ends, so the old page may still be there a moment."""
        ignored = [NoSuchElementException, StaleElementReferenceException]
        WebDriverWait(browser, 15, ignored_exceptions=ignored).until(
            lambda _: wanted in find(css).text
        )
        return str(find(css).text)

    async def visit(path: str, heading: str, shot: str) -> None:
        await blocking(browser.get, shop.base + path)
        assert heading in (await blocking(find, "h1")).text, path
        await blocking(browser.save_screenshot, str(ARTIFACTS / f"dashboard-{shot}.png"))

    # Signing in: the token goes into the form once, a cookie keeps it.
    await visit("/_dashboard", "Sign in", "sign-in")
    token = hs256(claims(sub="op-1", roles=["ops"], exp=2_000_000_000))
    await blocking((await blocking(find, "#token")).send_keys, token)
    await blocking((await blocking(find, "#sign-in")).click)
    assert await blocking(shown_after_click, "Actions") == "Actions"

    for path, heading, shot in (
        ("/_dashboard", "Actions", "actions"),
        ("/_dashboard/runs", "Runs", "runs"),
        ("/_dashboard/cron", "Cron", "cron"),
        ("/_dashboard/events", "Events", "events"),
        ("/_dashboard/mail", "Mail outbox", "mail"),
    ):
        await visit(path, heading, shot)

    # A run, and the run it caused through its event.
    await visit("/_dashboard/runs?action=shop.order", "Runs", "runs-filtered")
    await blocking((await blocking(find, "a.run-link")).click)
    assert "shop.order" in await blocking(shown_after_click, "shop.order")
    assert "[redacted]" in (await blocking(find, "body")).text  # card_token
    await blocking(browser.save_screenshot, str(ARTIFACTS / "dashboard-run.png"))
    children = await blocking(browser.find_elements, By.CSS_SELECTOR, "a.child-run")
    assert sorted(c.text for c in children) == ["shop.charge", "shop.onOrdered"]
    child = next(c for c in children if c.text == "shop.onOrdered")
    await blocking(child.click)
    assert "shop.onOrdered" in await blocking(shown_after_click, "shop.onOrdered")
    assert (await blocking(find, "#parent-run")).text == "shop.order"
    await blocking(browser.save_screenshot, str(ARTIFACTS / "dashboard-child-run.png"))

    # The dead job, and its Retry button.
    await visit("/_dashboard/jobs?status=dead", "Jobs", "jobs-dead")
    await blocking((await blocking(find, "button.retry")).click)
    assert "queued again" in await blocking(shown_after_click, "queued again", "#notice")
    await blocking(browser.save_screenshot, str(ARTIFACTS / "dashboard-retried.png"))
    assert query(empty_database, "SELECT status FROM actions_server.jobs WHERE kind = 'job'") == [
        {"status": "queued"}
    ]
    shots = list(ARTIFACTS.glob("dashboard-*.png"))
    assert len(shots) >= 10
    assert all(shot.stat().st_size > 1000 for shot in shots)
