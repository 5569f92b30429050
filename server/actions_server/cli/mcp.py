"""`mcp`: the app's MCP tools over stdin and stdout, for clients that start the server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..serving import run_loop
from .common import _load, caller_from, caller_option, config_argument, main, user_errors


@main.command("mcp")
@config_argument
@caller_option
@click.option("--no-migrate", is_flag=True, help="Do not apply the app's pending migrations.")
def mcp_command(
    config_file: Path,
    user_id: str | None,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    org_id: str | None,
    system: bool,
    no_migrate: bool,
) -> None:
    """Speak MCP (the Model Context Protocol) on stdin and stdout.

    Every action with an `mcp` trigger is a tool, run behind its guards as the
    caller the options name (anonymous without --user or --system). Stdout carries
    protocol messages only; every log line goes to stderr.
    """
    from ..mcp.stdio import claim_stdout, serve_stdio
    from ..runtime import resolve_dsn

    caller = caller_from(user_id, roles, permissions, org_id, system)
    frames = claim_stdout()  # before anything can print
    with user_errors():
        config, registry = _load(config_file, sys.stderr)
        run_loop(
            serve_stdio(
                config,
                registry,
                caller,
                dsn=resolve_dsn(config),
                stdin=sys.stdin.buffer,
                stdout=frames,
                migrate_app=not no_migrate,
            )
        )
