"""`/docs` in a real browser: Swagger UI renders the app's actions from this server
alone (its Content-Security-Policy refuses any other origin), takes a bearer token
and an `x-org-id`, and sends a request whose answer it shows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, blocking

from support.apps import Client, serving, write_app

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MANIFEST = """
module: hello
actions:
  - name: hello.greet
    description: Say hello
    handler: PKG.handlers:greet
    input:
      type: object
      properties: {name: {type: string, default: world}}
    triggers: [{api: GET /hello}]
  - name: hello.whoami
    handler: PKG.handlers:whoami
    guards: [authenticated]
    triggers: [{api: GET /whoami}]
"""

HANDLERS = """
async def greet(input, ctx):
    return {"message": f"Hello, {input['name']}!"}

async def whoami(input, ctx):
    return {"user": ctx.auth.user_id}
"""

CONFIG = "app: docs-demo\nauth: {jwt: {secret: a-secret-of-thirty-two-bytes-or-more!}}\n"


@pytest.fixture
async def hello(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"hello.yaml": MANIFEST}, HANDLERS, config=CONFIG)
    async with serving(config, empty_database) as client:
        yield client


@pytest.mark.timeout(180)
async def test_try_an_action_from_docs(browser: Any, hello: Client) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    def wait_for(css: str, text: str = "", seconds: float = 30) -> Any:
        def found(_: Any) -> Any:
            for element in browser.find_elements(By.CSS_SELECTOR, css):
                if text in element.text:
                    return element
            return None

        return WebDriverWait(browser, seconds).until(found)

    def try_greet() -> str:
        browser.get(hello.base + "/docs")
        wait_for(".opblock-summary-path", "/hello").click()
        field = wait_for("input[placeholder='name']")
        field.clear()
        field.send_keys("Ann")
        wait_for("button.execute", "Execute").click()
        return str(wait_for(".live-responses-table .response-col_description", "Hello").text)

    shown = await blocking(try_greet)
    assert '"message": "Hello, Ann!"' in shown

    token = hello.token("user-7")

    def authorize_then_whoami() -> str:
        wait_for("button.authorize", "Authorize").click()
        wait_for(".auth-container input[type='text'], .auth-container input").send_keys(token)
        wait_for(".auth-btn-wrapper button.authorize", "Authorize").click()
        wait_for(".auth-btn-wrapper button", "Close").click()
        wait_for(".opblock-summary-path", "/whoami").click()
        blocks = browser.find_elements(By.CSS_SELECTOR, ".opblock")
        block = next(b for b in blocks if "/whoami" in b.text)
        block.find_element(By.CSS_SELECTOR, "button.execute").click()
        return str(wait_for(".live-responses-table .response-col_description", "user-7").text)

    shown = await blocking(authorize_then_whoami)
    assert '"user": "user-7"' in shown
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await blocking(browser.save_screenshot, str(ARTIFACTS / "docs-swagger-ui.png"))
