"""`actions-server init` and `new action`, and the app they make: it validates, its
own tests pass (with the test kit, in pytest-asyncio's auto and strict modes), and
`serve` answers /healthz on the embedded database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.processes import CLI, Served, free_port

pytestmark = pytest.mark.integration


def run(*args: str, cwd: Path | None = None) -> Any:
    before = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)
    finally:
        os.chdir(before)


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, as a user runs it: an app's `actions`
    package must not be the one this test session imported already."""
    return subprocess.run(
        [*CLI, *args], cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )


def app_tests(folder: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The generated app's own test suite, as its README runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=60", *args],
        cwd=folder,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "ACTIONS_SERVER_TEST_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_init_writes_an_app_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "My App"
    result = run("init", str(folder), "--no-input")
    assert result.exit_code == 0, result.output
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == [
        ".dockerignore",
        ".gitignore",
        "Dockerfile",
        "README.md",
        "actions/__init__.py",
        "actions/hello.py",
        "actions/hello.yaml",
        "config.yaml",
        "migrations/001_init.sql",
        "pyproject.toml",
        "seeds/README.md",
        "tests/test_hello.py",
    ]
    assert "app: my-app\n" in (folder / "config.yaml").read_text()
    validated = cli(folder, "validate")
    assert validated.stdout == (
        "ok: my-app: 1 action in 1 module, 1 route, 0 event subscriptions, 0 cron schedules\n"
    )


def test_init_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    refused = run("init", str(tmp_path), "--no-input")
    assert refused.exit_code == 1
    assert refused.output == (
        f"error: {tmp_path} is not empty: choose an empty or new folder, or pass --force "
        "to write the app's files over whatever has the same names\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert run("init", str(tmp_path), "--no-input", "--force").exit_code == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_init_never_writes_outside_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "actions").symlink_to(outside, target_is_directory=True)
    refused = run("init", str(folder), "--no-input", "--force")
    assert refused.exit_code == 1
    assert "it leads outside" in refused.output
    assert list(outside.iterdir()) == []


def test_a_bad_app_name_is_refused(tmp_path: Path) -> None:
    refused = run("init", str(tmp_path / "x"), "--name", "Bad Name!")
    assert (refused.exit_code, refused.output.split(":")[0]) == (1, "error")
    assert "use lower-case letters, digits" in refused.output


@pytest.mark.timeout(300)
def test_new_actions_validate_and_their_tests_pass(tmp_path: Path, server_dsn: str) -> None:
    folder = tmp_path / "notes-app"
    assert run("init", str(folder), "--no-input").exit_code == 0
    for args in (
        ("notes.create", "--api", "POST /notes"),
        ("notes.get", "--api", "GET /notes/:id"),
        ("notes.onCreated", "--event", "note.created"),
        ("system.hourlyCleanup", "--cron", "0 * * * *"),
    ):
        added = cli(folder, "new", "action", *args)
        assert added.returncode == 0, added.stderr
    assert cli(folder, "validate").stdout == (
        "ok: notes-app: 5 actions in 3 modules, 3 routes, 1 event subscription, 1 cron schedule\n"
    )
    # A conflicting route is refused, and nothing is left changed.
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    refused = cli(folder, "new", "action", "notes.again", "--api", "GET /hello")
    assert refused.returncode == 1
    assert refused.stderr == (
        "actions/notes.yaml:30: GET /hello is already served by 'hello.greet' "
        "(actions/hello.yaml:5)\n1 problem found\n"
    )
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    auto = app_tests(folder, server_dsn)
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert "8 passed" in auto.stdout
    (folder / "tests" / "test_strict.py").write_text(
        "import pytest\n\n\n@pytest.mark.asyncio\n"
        "async def test_greet(call):\n"
        '    assert await call("hello.greet", {"name": "Bo"}) == {"message": "Hello, Bo!"}\n'
    )
    strict = app_tests(folder, server_dsn, "-o", "asyncio_mode=strict", "tests/test_strict.py")
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert "1 passed" in strict.stdout


@pytest.mark.timeout(180)
def test_the_new_app_serves_on_the_embedded_database(tmp_path: Path) -> None:
    pytest.importorskip("pgserver", reason="the embedded PostgreSQL is the 'embedded' extra")
    folder = tmp_path / "served"
    assert run("init", str(folder), "--no-input").exit_code == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    served = Served(["serve", "--port", str(port)], folder, env, tmp_path / "serve.log")
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}", seconds=120)
        assert "embedded PostgreSQL running" in served.output()
    finally:
        assert served.stop() == 0
