"""`validate`, `routes`, `openapi`, `schema`: what the files say, without a database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..jsonutil import dumps_pretty
from ..manifests.loader import manifest_schema
from ..registry import counts
from .common import _load, config_argument, main, user_errors


@main.command("validate")
@config_argument
def validate_command(config_file: Path) -> None:
    """Check the config and every manifest; list every problem (exit 1 if any)."""
    with user_errors():
        config, registry = _load(config_file)
        tools = f", {len(registry.tools)} MCP tools" if registry.tools else ""
        click.echo(f"ok: {config.app}: {counts(registry)}{tools}")


@main.command("routes")
@config_argument
def routes_command(config_file: Path) -> None:
    """Print every HTTP route: method, path, action, guards."""
    with user_errors():
        _, registry = _load(config_file)
    rows = [("METHOD", "PATH", "ACTION", "GUARDS")]
    for route in sorted(registry.routes, key=lambda r: (r.path.openapi, r.method)):
        guards = ", ".join(str(g) for g in route.action.guards) or "-"
        rows.append((route.method, route.path.openapi, route.action.name, guards))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        )
    click.echo(f"({counts(registry)})")


@main.command("openapi")
@config_argument
def openapi_command(config_file: Path) -> None:
    """Print the OpenAPI 3.1 document of every HTTP route, as GET /openapi.json serves it."""
    from ..openapi import build_openapi

    with user_errors():
        config, registry = _load(config_file)
    click.echo(dumps_pretty(build_openapi(registry, config)))


@main.command("schema")
@click.argument("which", type=click.Choice(["manifest", "config"]), default="manifest")
def schema_command(which: str) -> None:
    """Print the JSON Schema of manifests or of config.yaml (for editors)."""
    from ..config import config_schema

    schema: Callable[[], dict[str, Any]] = manifest_schema if which == "manifest" else config_schema
    click.echo(dumps_pretty(schema()))
