"""The command line, in-process (click's runner) and as a real `serve` process."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.apps import REPO, write_app
from support.postgres import folder_for_postgres
from support.processes import Served, free_port, http

pytestmark = pytest.mark.integration

BROKEN = REPO / "tests" / "fixtures" / "broken_app" / "config.yaml"


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_validate_ok() -> None:
    result = run("validate", str(REPO / "config.yaml"))
    assert result.exit_code == 0
    assert (
        result.output.strip()
        == "ok: saas-example: 33 actions in 9 modules, 25 routes, 5 event subscriptions, 3 cron schedules, 2 MCP tools"
    )


def test_validate_lists_problems_and_exits_1() -> None:
    result = run("validate", str(BROKEN))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "26 problems found"
    assert "actions/b_structure.yaml:3: unknown key 'colour'" in lines


def test_validate_reports_config_problems(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("app: x\nserver: {port: ${PORT}}\n")
    result = run("validate", str(tmp_path / "config.yaml"))
    assert result.exit_code == 1
    assert ":2: invalid YAML" in result.output
    (tmp_path / "config.yaml").write_text("app: x\nserver:\n  port: '${NO_SUCH_PORT}'\n")
    result = run("validate", str(tmp_path / "config.yaml"), env={"NO_SUCH_PORT": None})  # type: ignore[dict-item]
    assert result.exit_code == 1
    assert (
        "config.yaml:3: server.port: environment variable NO_SUCH_PORT is not set" in result.output
    )


def test_routes_prints_a_table() -> None:
    result = run("routes", str(REPO / "config.yaml"))
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["METHOD", "PATH", "ACTION", "GUARDS"]
    assert [line.split(None, 3) for line in lines if "/users" in line or "/auth/login" in line] == [
        ["POST", "/auth/login", "auth.login", "rate_limit: 10/60s per ip"],
        ["GET", "/users", "users.list", "authenticated, has_permission: users:read"],
        ["POST", "/users", "users.create", "authenticated, has_permission: users:create"],
        ["DELETE", "/users/{id}", "users.delete", "authenticated, has_permission: users:delete"],
        ["GET", "/users/{id}", "users.get", "authenticated, guard: actions.guards:self_or_admin"],
        [
            "PATCH",
            "/users/{id}",
            "users.update",
            "authenticated, guard: actions.guards:self_or_admin",
        ],
    ]


def test_schema_prints_the_manifest_schema() -> None:
    result = run("schema", "manifest")
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "actions-server manifest"


ADMIN = ("--user", "00000000-0000-4000-8000-00000000ad01", "--role", "admin")


def test_call_runs_an_action_and_prints_json(database: str) -> None:
    env = {"DATABASE_URL": database}
    result = run(
        "call",
        str(REPO / "config.yaml"),
        "users.create",
        *ADMIN,
        "--input",
        '{"email": "cli@example.com", "name": "Cli"}',
        env=env,
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)["user"]
    assert created["email"] == "cli@example.com"

    result = run(
        "call",
        str(REPO / "config.yaml"),
        "users.get",
        "--user",
        created["id"],
        "--input",
        json.dumps({"id": created["id"]}),
        env=env,
    )
    assert json.loads(result.stdout)["user"] == created


def test_call_applies_guards_like_http(database: str) -> None:
    env = {"DATABASE_URL": database}
    config = str(REPO / "config.yaml")
    anonymous = run("call", config, "users.list", env=env)
    assert anonymous.exit_code == 1
    assert json.loads(anonymous.stderr)["error"]["code"] == "unauthenticated"
    no_permission = run(
        "call",
        config,
        "users.create",
        "--user",
        "00000000-0000-4000-8000-000000000001",
        "--input",
        '{"email": "a@b.co", "name": "A"}',
        env=env,
    )
    body = json.loads(no_permission.stderr)["error"]
    assert len(body.pop("trace_id")) == 32
    assert body == {
        "code": "forbidden",
        "message": "missing permission 'users:create'",
        "details": [],
    }
    system = run("call", config, "users.list", "--system", env=env)
    assert json.loads(system.stderr)["error"]["code"] == "unauthenticated"


def test_call_failure_prints_the_error_body_and_exits_1(database: str) -> None:
    result = run(
        "call",
        str(REPO / "config.yaml"),
        "users.create",
        *ADMIN,
        "--input",
        '{"email": "x"}',
        env={"DATABASE_URL": database},
    )
    assert result.exit_code == 1
    body = json.loads(result.stderr)
    assert body["error"]["code"] == "validation_failed"
    assert {d["path"] for d in body["error"]["details"]} == {"/email", "/name"}


def test_call_unknown_action_is_a_usage_error() -> None:
    result = run("call", str(REPO / "config.yaml"), "users.nope")
    assert result.exit_code == 2
    assert "no action named 'users.nope'" in result.output


def test_migrate_applies_once_and_refuses_edited_migrations(
    tmp_path: Path, empty_database: str
) -> None:
    config, _ = write_app(
        tmp_path,
        {},
        migrations={
            "001_a.sql": "CREATE TABLE a (id int);",
            "002_b.sql": "CREATE TABLE b (id int);",
        },
    )
    env = {"DATABASE_URL": empty_database}
    (tmp_path / "config.yaml").write_text("app: m\ndatabase: {url: '${DATABASE_URL}'}\n")
    first = run("migrate", str(config), env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == ["applied 001_a.sql", "applied 002_b.sql"]
    assert (
        run("migrate", str(config), env=env).stdout.strip()
        == "nothing to apply: the database is up to date"
    )
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute(
            "SELECT name, length(checksum) FROM actions_server.migrations WHERE scope = 'app' ORDER BY name"
        ).fetchall()
    assert rows == [("001_a.sql", 64), ("002_b.sql", 64)]

    (tmp_path / "migrations" / "001_a.sql").write_text("CREATE TABLE a (id bigint);")
    edited = run("migrate", str(config), env=env)
    assert edited.exit_code == 1
    assert "001_a.sql was changed after it was applied" in edited.output


def test_a_failing_migration_names_file_and_line_and_applies_nothing(
    tmp_path: Path, empty_database: str
) -> None:
    config, _ = write_app(
        tmp_path,
        {},
        migrations={
            "001_bad.sql": "CREATE TABLE ok (id int);\nCREATE TABLE broken (id nosuchtype);\n"
        },
    )
    (tmp_path / "config.yaml").write_text("app: m\ndatabase: {url: '${DATABASE_URL}'}\n")
    result = run("migrate", str(config), env={"DATABASE_URL": empty_database})
    assert result.exit_code == 1
    assert '001_bad.sql (line 2) failed: type "nosuchtype" does not exist' in result.output
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regclass('ok')").fetchone() == (None,)


# --- a real `serve` process -----------------------------------------------------


@pytest.fixture
def example_copy() -> Iterator[Path]:
    """The example app in a folder of its own: its embedded PostgreSQL lives under it."""
    with folder_for_postgres() as folder:
        for name in ("actions", "schemas", "migrations", "templates"):
            shutil.copytree(
                REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        shutil.copy(REPO / "config.yaml", folder / "config.yaml")
        yield folder


@pytest.mark.timeout(120)
def test_serve_on_the_embedded_database(example_copy: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    served = Served(
        ["serve", "config.yaml", "--port", str(port)], example_copy, env, example_copy / "serve.log"
    )
    try:
        base = f"http://127.0.0.1:{port}"
        served.wait_until_healthy(base, seconds=90)
        signup = {"email": "embedded@example.com", "password": "correct horse", "name": "Em"}
        status, body = http("POST", base + "/auth/signup", signup)
        assert status == 201, body
        status, me = http("GET", base + "/auth/me", token=body["token"])
        assert (status, me["user"]["email"], me["orgs"]) == (200, "embedded@example.com", [])
        status, body = http("POST", base + "/orgs", {"name": "Acme"}, token=body["token"])
        assert status == 201, body
        assert (example_copy / ".actions-server" / "pgdata" / "PG_VERSION").exists()
    finally:
        code = served.stop()
    assert code == 0, served.output()
    assert "serving saas-example" in served.output()
    # The embedded server stops with the last process that used it.
    assert not (example_copy / ".actions-server" / "pgdata" / "postmaster.pid").exists()


SLOW_MANIFEST = """
module: slow
actions:
  - name: slow.wait
    handler: PKG.handlers:wait
    triggers: [{api: GET /wait}]
  - name: slow.pid
    handler: PKG.handlers:pid
    triggers: [{api: GET /pid}]
"""

SLOW_HANDLERS = """
import asyncio, os
from pathlib import Path

async def wait(input, ctx):
    # Signals that it is running, then holds its request until the test says so.
    Path("started").touch()
    while not Path("release").exists():
        await asyncio.sleep(0.02)
    return {"done": True}

async def pid(input, ctx):
    return {"pid": os.getpid()}
"""


@pytest.fixture
def slow_app(tmp_path: Path) -> Path:
    config, _ = write_app(
        tmp_path,
        {"slow.yaml": SLOW_MANIFEST},
        SLOW_HANDLERS,
        config="app: slow\ndatabase: {url: '${DATABASE_URL}'}\nserver: {shutdown_grace_seconds: 60}\n",
    )
    return config


def serve_env(database: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database}


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    """Poll `check` until it is true (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.timeout(120)
def test_sigterm_lets_in_flight_requests_finish(slow_app: Path, database: str) -> None:
    port = free_port()
    served = Served(
        ["serve", str(slow_app), "--port", str(port)],
        slow_app.parent,
        serve_env(database),
        slow_app.parent / "serve.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        served.wait_until_healthy(base)
        result: dict[str, Any] = {}

        def request() -> None:
            result["answer"] = http("GET", base + "/wait", timeout=60)

        thread = threading.Thread(target=request)
        thread.start()
        folder = slow_app.parent
        assert wait_until(lambda: (folder / "started").exists(), 30), "the request never ran"
        served.terminate()
        assert wait_until(lambda: "shutting down" in served.output(), 30), served.output()
        assert served.process.poll() is None  # still up: the request is in flight
        (folder / "release").touch()
        thread.join(60)
        assert result["answer"] == (200, {"done": True})
    finally:
        (slow_app.parent / "release").touch()
        code = served.stop(60)
    assert code == 0, served.output()
    assert "shutting down" in served.output()


@pytest.mark.timeout(90)
def test_workers_share_one_port(slow_app: Path, database: str) -> None:
    port = free_port()
    args = ["serve", str(slow_app), "--port", str(port), "--workers", "2"]
    served = Served(args, slow_app.parent, serve_env(database), slow_app.parent / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        served.wait_until_healthy(base)
        pids = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            status, body = http("GET", base + "/pid")
            if status == 200:
                pids.add(body["pid"])
        assert len(pids) == 2
        assert served.process.pid not in pids
    finally:
        code = served.stop(30)
    assert code == 0, served.output()


def test_serve_refuses_the_development_secret_off_loopback() -> None:
    result = run("serve", str(REPO / "config.yaml"), "--host", "0.0.0.0", env={"JWT_SECRET": None})  # type: ignore[dict-item]
    assert result.exit_code == 1
    assert "auth.jwt.secret is a development secret" in result.output
