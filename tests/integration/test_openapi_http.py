"""`GET /openapi.json`, `GET /docs` and `actions-server openapi`, over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import RawTestServer
from click.testing import CliRunner
from openapi_spec_validator import validate

import actions_server.openapi
from actions_server.builtins import load_app
from actions_server.cli import main
from actions_server.config import load_config
from actions_server.http.app import HttpFront, create_server
from actions_server.openapi import build_openapi
from actions_server.runtime import open_runtime
from support.apps import REPO, Client, write_app

pytestmark = pytest.mark.integration

HANDLERS = """
async def noop(input, ctx):
    return {"ok": True}
"""

TRICKY = """
module: tricky
description: "Things <b>not</b> to trust"
actions:
  - name: tricky.run
    description: "Runs <script>alert('x')</script> & more"
    handler: PKG.handlers:noop
    input: {type: object, properties: {q: {type: string, description: "</pre><img src=x>"}}}
    triggers: [{api: GET /run}]
"""


async def test_openapi_json_is_valid_and_lists_every_route(example_client: Client) -> None:
    status, document, response = await example_client.get("/openapi.json")
    assert status == 200
    assert response.content_type == "application/json"
    assert response.headers["x-trace-id"]
    validate(document)
    registry, config = example_client.runtime.registry, example_client.runtime.config
    assert document == build_openapi(registry, config)
    for route in registry.routes:
        operation = document["paths"][route.path.openapi][route.method.lower()]
        assert operation["operationId"] == route.action.name
        guarded = {g.name for g in route.action.guards} & {
            "authenticated",
            "has_permission",
            "has_role",
            "in_org",
            "has_feature",
        }
        assert (operation.get("security") == [{"bearerAuth": []}]) == bool(guarded), route


async def test_reference_endpoints_answer_get_only(example_client: Client) -> None:
    status, body, response = await example_client.post("/openapi.json", json={})
    assert status == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert body["error"]["code"] == "method_not_allowed"


async def test_docs_page_lists_every_route(example_client: Client) -> None:
    status, page, response = await example_client.get("/docs/reference")
    assert status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    for route in example_client.runtime.registry.routes:
        anchor = f'<article id="op-{route.action.name}">'
        assert anchor in page
        article = page[page.index(anchor) :].split("</article>", 1)[0]
        assert f'<span class="method {route.method}">{route.method}</span>' in article
        assert route.path.openapi in article
    # No other host is named: no CDN, the page works offline.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


async def test_docs_is_swagger_ui_from_this_server(example_client: Client) -> None:
    status, page, response = await example_client.get("/docs")
    assert (status, response.content_type) == (200, "text/html")
    # The browser is told so too: scripts, styles and requests from this origin only.
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    sources = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert sources == [
        "/docs/swagger-ui.css?v=5.32.0",
        "/docs/reference",
        "/openapi.json",
        "/docs/swagger-ui-bundle.js?v=5.32.0",
        "/docs/init.js?v=5.32.0",
    ]
    folder = Path(actions_server.openapi.__file__).with_name("swagger_ui")
    for name, content_type in (
        ("swagger-ui.css", "text/css"),
        ("swagger-ui-bundle.js", "text/javascript"),
    ):
        status, body, response = await example_client.get(f"/docs/{name}?v=5.32.0")
        assert (status, response.content_type) == (200, content_type)
        assert body.encode() == (folder / name).read_bytes()
    status, script, _ = await example_client.get("/docs/init.js")
    assert 'url: "/openapi.json"' in script
    assert "validatorUrl: null" in script  # Swagger UI would otherwise call validator.swagger.io


@asynccontextmanager
async def serve_front(config_path: Path, dsn: str) -> AsyncIterator[tuple[str, HttpFront]]:
    """Like support.apps.serving, with the front at hand to swap registries."""
    config = load_config(config_path, env={})
    async with open_runtime(config, load_app(config), dsn=dsn) as runtime:
        _, front = create_server(runtime)
        server = RawTestServer(front.handle, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/"), front
        finally:
            await server.close()


async def test_docs_page_escapes_manifest_text(tmp_path: Path, database: str) -> None:
    config_path, _ = write_app(tmp_path, {"tricky.yaml": TRICKY}, HANDLERS)
    async with (
        serve_front(config_path, database) as (base, _),
        aiohttp.ClientSession() as http,
        http.get(f"{base}/docs/reference") as response,
    ):
        page = await response.text()
    for markup in ("<script>", "<img", "<b>not"):
        assert markup not in page
    assert "Runs &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page
    assert "&lt;/pre&gt;&lt;img src=x&gt;" in page
    assert "Things &lt;b&gt;not&lt;/b&gt; to trust" in page


async def test_a_new_registry_brings_its_own_reference(tmp_path: Path, database: str) -> None:
    config_path, package = write_app(tmp_path, {"tricky.yaml": TRICKY}, HANDLERS)
    async with serve_front(config_path, database) as (base, front), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/openapi.json") as response:
            before = await response.json()
        (tmp_path / "actions" / "more.yaml").write_text(
            f"module: more\nactions:\n  - name: more.hello\n    handler: {package}.handlers:noop\n"
            "    triggers: [{api: POST /hello}]\n"
        )
        front.use_registry(load_app(load_config(config_path, env={})))
        async with http.get(f"{base}/openapi.json") as response:
            after = await response.json()
        async with http.get(f"{base}/docs/reference") as response:
            page = await response.text()
    assert list(before["paths"]) == ["/run"]
    assert list(after["paths"]) == ["/hello", "/run"]
    assert after["paths"]["/hello"]["post"]["operationId"] == "more.hello"
    assert 'id="op-more.hello"' in page


async def test_cli_prints_the_served_document(example_client: Client) -> None:
    _, served, _ = await example_client.get("/openapi.json")
    result = CliRunner().invoke(main, ["openapi", str(REPO / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == served


def test_cli_lists_problems_instead_of_a_document() -> None:
    broken = REPO / "tests" / "fixtures" / "broken_app" / "config.yaml"
    result = CliRunner().invoke(main, ["openapi", str(broken)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "26 problems found"
