"""One argument order for the whole command line, and `config.yaml` as the default CONFIG.

In-process (click's runner), on commands that need no database: validate, routes,
token, and the usage errors of the others.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.apps import REPO


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), prog_name="actions-server", catch_exceptions=False)


@pytest.fixture
def in_example_app() -> Iterator[None]:
    before = Path.cwd()
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.mark.usefixtures("in_example_app")
@pytest.mark.parametrize("args", [(), ("config.yaml",), (str(REPO / "config.yaml"),)])
def test_validate_takes_config_yaml_by_default(args: tuple[str, ...]) -> None:
    result = run("validate", *args)
    assert (result.exit_code, result.output.split(":")[0]) == (0, "ok")


@pytest.mark.usefixtures("in_example_app")
@pytest.mark.parametrize(
    "args",
    [
        ("token", "--user", "u1", "--role", "admin"),
        ("token", "issue", "--user", "u1", "--role", "admin"),
        ("token", "issue", "config.yaml", "--user", "u1", "--role", "admin"),
        ("token", "config.yaml", "--user", "u1", "--role", "admin"),  # the order of before
        ("token", "config.yaml", "issue", "--user", "u1", "--role", "admin"),
    ],
)
def test_token_in_every_order(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["roles"]) == ("u1", ["admin"])


def test_a_missing_default_config_says_where_it_looked(tmp_path: Path) -> None:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        for args in (["validate"], ["jobs", "list"], ["mail", "list"], ["call", "users.list"]):
            result = run(*args)
            assert result.exit_code == 2, args
            assert f"no config.yaml in {tmp_path}: run this in the app's folder" in result.output
    finally:
        os.chdir(before)


def test_a_named_config_is_read(tmp_path: Path) -> None:
    (tmp_path / "other.yml").write_text("app: other\nactions: []\n")
    result = run("validate", str(tmp_path / "other.yml"))
    assert (result.exit_code, result.output) == (
        0,
        "ok: other: 0 actions in 0 modules, 0 routes, 0 event subscriptions, 0 cron schedules\n",
    )


def test_groups_put_the_command_first() -> None:
    for group, commands in (("jobs", {"list", "retry", "cancel"}), ("mail", {"list"})):
        for command in commands:
            usage = run(group, command, "--help").output.splitlines()[0]
            assert usage.startswith(f"Usage: actions-server {group} {command} [OPTIONS] [CONFIG]")
    assert run("call", "--help").output.startswith(
        "Usage: actions-server call [OPTIONS] [CONFIG] ACTION"
    )


def test_top_level_help_shows_whole_descriptions() -> None:
    output = run("--help").output
    commands = output.split("Commands:")[1]
    assert "..." not in commands
    words = " ".join(commands.split())
    assert (
        "dev Serve for development: reload on save, a log line per request, pretty logs, "
        "the dashboard open without a token from this machine, and a banner of URLs. "
    ) in words
    assert "defaults to config.yaml in the current folder" in output
