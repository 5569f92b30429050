"""`serve --reload` as a developer uses it: a real server process on a temporary
app, files edited under it, and the changes seen over HTTP and in its log.

Every wait polls for the effect (up to RELOAD_SECONDS) rather than sleeping a
fixed time, so a slow machine makes the test slower, not flaky.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.apps import write_app
from support.polling import query
from support.processes import Served, free_port, http
from support.tokens import SECRET, claims, hs256

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RELOAD_SECONDS = 30.0

CONFIG = f"""
app: reloading
database: {{url: '${{DATABASE_URL}}'}}
auth:
  jwt: {{secret: {SECRET}}}
  roles: {{reader: []}}
"""

HELLO = """
module: a
actions:
  - name: a.hello
    handler: PKG.handlers:hello
    triggers: [{api: GET /hello}]
"""

HANDLERS = """
async def hello(input, ctx):
    return {"version": 1}


async def echo(input, ctx):
    return input
"""


class App:
    """A served app whose files a test edits."""

    def __init__(self, folder: Path, package: str, served: Served, base: str, dsn: str) -> None:
        self.folder = folder
        self.package = package
        self.served = served
        self.base = base
        self.dsn = dsn

    def write(self, relative: str, text: str) -> None:
        (self.folder / relative).write_text(
            textwrap.dedent(text).replace("PKG", self.package), encoding="utf-8"
        )

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return http(method, self.base + path, body, **kw)

    def log(self) -> str:
        return self.served.output()

    def reloads(self) -> int:
        return self.log().count("reloaded in")


def until(check: Callable[[], Any], what: str, app: App, seconds: float = RELOAD_SECONDS) -> Any:
    """Poll `check` until it returns something true; fail with the server's log."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the server's log:\n{app.log()}")
        time.sleep(0.05)


@pytest.fixture
def app(tmp_path: Path, empty_database: str) -> Iterator[App]:
    config, package = write_app(tmp_path, {"a.yaml": HELLO}, HANDLERS, config=CONFIG)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": empty_database}
    served = Served(
        ["serve", config.name, "--port", str(port), "--reload"],
        tmp_path,
        env,
        tmp_path / "serve.log",
    )
    app = App(tmp_path, package, served, f"http://127.0.0.1:{port}", empty_database)
    try:
        served.wait_until_healthy(app.base)
        until(lambda: "watching" in app.log(), "the watcher to start", app)
        yield app
    finally:
        assert served.stop() == 0, served.output()


def test_routes_schemas_and_handler_code_follow_the_files(app: App) -> None:
    assert app.call("GET", "/hello") == (200, {"version": 1})
    assert "/items" not in app.call("GET", "/openapi.json")[1]["paths"]

    app.write(
        "actions/items.yaml",
        """
        module: items
        prefix: /items
        actions:
          - name: items.create
            handler: PKG.handlers:echo
            input:
              type: object
              required: [name]
              properties: {name: {type: string}}
              additionalProperties: false
            triggers: [{api: POST /, status: 201}]
        """,
    )
    until(lambda: app.call("POST", "/items", {"name": "a"})[0] == 201, "the new route", app)
    assert app.call("POST", "/items", {"name": 7})[0] == 400
    # The reference is built again when next asked for, from the reloaded app.
    assert "post" in app.call("GET", "/openapi.json")[1]["paths"]["/items"]

    schema = (app.folder / "actions/items.yaml").read_text()
    app.write(
        "actions/items.yaml", schema.replace("{name: {type: string}}", "{name: {type: integer}}")
    )
    until(
        lambda: app.call("POST", "/items", {"name": 7}) == (201, {"name": 7}), "the new schema", app
    )
    status, body = app.call("POST", "/items", {"name": "a"})
    assert status == 400
    assert body["error"]["details"][0]["path"] == "/name"

    # Same size, very likely the same second as the last import: stale bytecode would
    # still say 1.
    handlers = app.folder / app.package / "handlers.py"
    handlers.write_text(handlers.read_text().replace('"version": 1', '"version": 2'))
    until(lambda: app.call("GET", "/hello") == (200, {"version": 2}), "the new handler code", app)

    # A helper module the handler imports is the app's too: its edit is picked up.
    app.write(f"{app.package}/helpers.py", "VERSION = 3\n")
    handlers.write_text(
        f"from {app.package}.helpers import VERSION\n"
        + handlers.read_text().replace('"version": 2', '"version": VERSION')
    )
    until(lambda: app.call("GET", "/hello") == (200, {"version": 3}), "the helper's value", app)
    app.write(f"{app.package}/helpers.py", "VERSION = 4\n")
    until(lambda: app.call("GET", "/hello") == (200, {"version": 4}), "the helper's edit", app)

    line = until(
        lambda: re.search(r"reloaded in \d+ ms.*: (.*)", app.log()), "the success line", app
    )
    assert "route" in line.group(1)


def test_events_and_cron_schedules_follow_the_files(app: App) -> None:
    app.write(
        f"{app.package}/events.py",
        """
        async def ping(input, ctx):
            ctx.event.emit("pinged", {"n": input["n"]})
            return {}

        async def pinged(input, ctx):
            await ctx.kv.set("pinged", input["n"])

        async def tick(input, ctx):
            await ctx.kv.incr("ticks")

        async def witness(input, ctx):
            return None

        async def read(input, ctx):
            return {"value": await ctx.kv.get(input["key"])}
        """,
    )
    manifest = """
        module: e
        actions:
          - name: e.ping
            handler: PKG.events:ping
            triggers: [{api: POST /ping}]
          - name: e.read
            handler: PKG.events:read
            triggers: [{api: GET /kv/:key}]
          - name: e.pinged
            handler: PKG.events:pinged
            triggers: [{event: pinged}]
          - name: e.tick
            handler: PKG.events:tick
            triggers: [{cron: "* * * * * *"}]
        """
    app.write("actions/e.yaml", manifest)
    until(lambda: app.call("POST", "/ping", {"n": 5})[0] == 200, "the new route", app)
    # The worker and ctx.event see the new subscription, the scheduler the new schedule.
    until(lambda: app.call("GET", "/kv/pinged") == (200, {"value": 5}), "the event's delivery", app)
    until(lambda: (app.call("GET", "/kv/ticks")[1]["value"] or 0) >= 2, "cron ticks", app)

    reloads = app.reloads()
    # e.tick goes; e.witness, a schedule of the same second, shows the scheduler running on.
    witness = """
          - name: e.witness
            handler: PKG.events:witness
            triggers: [{cron: "* * * * * *"}]
    """
    app.write("actions/e.yaml", manifest.split("          - name: e.tick")[0] + witness)
    until(lambda: app.reloads() > reloads, "the reload without the schedule", app)
    count = "SELECT count(*) AS n FROM actions_server.jobs WHERE action = %s"
    before = query(app.dsn, count, "e.tick")[0]["n"]
    done = count + " AND status = 'done'"
    until(lambda: query(app.dsn, done, "e.witness")[0]["n"] >= 3, "3 ticks of e.witness", app)
    # At most the one tick that may have been firing while the registry was swapped.
    assert query(app.dsn, count, "e.tick")[0]["n"] - before <= 1


def test_a_broken_edit_keeps_the_last_good_version_until_it_is_fixed(app: App) -> None:
    good = (app.folder / "actions/a.yaml").read_text()

    # A refusal is logged as a line, then a line per problem: wait for the problem.
    seen = len(app.log())
    app.write("actions/a.yaml", good + "  - name: a.broken\n    handler: [unclosed\n")
    until(lambda: "reload refused" in app.log()[seen:], "the refusal", app)
    until(lambda: re.search(r"actions/a\.yaml:\d+: ", app.log()[seen:]), "its problem", app)
    assert app.call("GET", "/hello") == (200, {"version": 1})

    seen = len(app.log())
    app.write("actions/a.yaml", good.replace("triggers:", "triger: x\n    triggers:"))
    until(
        lambda: re.search(r"actions/a\.yaml:\d+: .*unknown key 'triger'", app.log()[seen:]),
        "the second refusal's problem",
        app,
    )
    assert "reload refused" in app.log()[seen:]
    assert app.call("GET", "/hello") == (200, {"version": 1})

    # A handler module that no longer imports: the old code keeps serving.
    handlers = app.folder / app.package / "handlers.py"
    working = handlers.read_text()
    handlers.write_text(working.replace("return input", "return input +"))
    app.write("actions/a.yaml", good)
    syntax_error = rf"actions/a\.yaml:\d+: .* syntax error at {app.package}/handlers\.py:\d+"
    until(lambda: re.search(syntax_error, app.log()), "the handler's syntax error", app)
    assert app.call("GET", "/hello") == (200, {"version": 1})

    handlers.write_text(working.replace('"version": 1', '"version": 2'))
    app.write("actions/a.yaml", good.replace("GET /hello", "GET /hi"))
    until(lambda: app.call("GET", "/hi") == (200, {"version": 2}), "the fixed version", app)
    assert app.call("GET", "/hello")[0] == 404


def test_config_roles_apply_live_and_other_settings_ask_for_a_restart(app: App) -> None:
    app.write(
        "actions/guarded.yaml",
        """
        module: g
        actions:
          - name: g.read
            handler: PKG.handlers:hello
            guards: [{has_permission: "items:read"}]
            triggers: [{api: GET /guarded}]
        """,
    )
    token = hs256(claims(roles=["reader"]))
    until(lambda: app.call("GET", "/guarded", token=token)[0] == 403, "the guarded route", app)

    config = (app.folder / "config.yaml").read_text()
    app.write(
        "config.yaml",
        config.replace("{reader: []}", "{reader: ['items:read']}") + "server: {port: 1}\n",
    )
    until(lambda: app.call("GET", "/guarded", token=token)[0] == 200, "the new role", app)
    assert "server.port changed, which needs a restart" in app.log()


def test_reload_refuses_several_workers(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", str(tmp_path / "config.yaml"), "--reload", "--workers", "2"]
    )
    assert result.exit_code == 2
    assert "--reload runs one process" in result.output
