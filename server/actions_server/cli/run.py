"""`call`, `token`, `migrate`: one action, one token, the migrations."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ..errors import ActionError
from ..http.errors import error_body
from ..jsonutil import dumps_pretty, loads
from ..logs import configure_logging
from ..serving import run_loop
from .common import (
    DefaultGroup,
    _load,
    caller_from,
    caller_option,
    config_argument,
    main,
    user_errors,
)


@main.command("call")
@config_argument
@click.argument("action")
@click.option(
    "--input",
    "input_text",
    default="{}",
    show_default=True,
    help="The input as JSON; '-' reads stdin, '@FILE' reads a file.",
)
@caller_option
@click.option("--no-migrate", is_flag=True, help="Do not apply the app's pending migrations.")
def call_command(
    config_file: Path,
    action: str,
    input_text: str,
    user_id: str | None,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    org_id: str | None,
    system: bool,
    no_migrate: bool,
) -> None:
    """Run ACTION once without HTTP and print its output as JSON.

    Without --user or --system it runs as an anonymous caller, so guards apply
    exactly as they would to an HTTP request without a token.
    """
    from ..ids import new_trace_id
    from ..runtime import open_runtime, resolve_dsn

    caller = caller_from(user_id, roles, permissions, org_id, system)
    with user_errors():
        config, registry = _load(config_file)
        spec = registry.action(action)
        if spec is None:
            raise click.BadParameter(f"no action named {action!r}", param_hint="ACTION")
        payload = _parse_input(input_text)

        async def call() -> Any:
            async with open_runtime(
                config, registry, dsn=resolve_dsn(config), migrate_app=not no_migrate
            ) as rt:
                result = await rt.executor.run(
                    spec, payload, trigger="cli", caller=caller, trace_id=trace_id
                )
                return result.output

        trace_id = new_trace_id()
        try:
            output = run_loop(call())
        except ActionError as exc:
            click.echo(dumps_pretty(error_body(exc, trace_id)), err=True)
            sys.exit(1)
    click.echo(dumps_pretty(output))


@main.group("token", cls=DefaultGroup, default="issue")
def token_group() -> None:
    """Issue a bearer token (the default), or revoke tokens before they expire."""


@token_group.command("issue")
@config_argument
@click.option("--user", "user_id", required=True, help="The token's subject (sub).")
@click.option("--role", "roles", multiple=True, help="A role to grant (repeatable).")
@click.option(
    "--permission", "permissions", multiple=True, help="A permission to grant (repeatable)."
)
@click.option("--ttl", "ttl_seconds", type=click.IntRange(min=1), default=3600, show_default=True)
def token_command(
    config_file: Path,
    user_id: str,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    ttl_seconds: int,
) -> None:
    """Print a bearer token signed with the config's auth.jwt key (for operators and curl)."""
    from ..auth import AuthSetupError, TokenIssuer

    with user_errors():
        config = load_config(config_file)
        try:
            token = TokenIssuer(config.auth.jwt).issue(
                user_id, roles=roles, permissions=permissions, ttl_seconds=ttl_seconds
            )
        except AuthSetupError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(token)


@token_group.command("revoke")
@config_argument
@click.option("--jti", help="Revoke the one token with this jti claim.")
@click.option("--user", "user_id", help="Revoke every token of this user issued before now.")
def token_revoke(config_file: Path, jti: str | None, user_id: str | None) -> None:
    """Refuse tokens before they expire, on every instance within a second."""
    from ..auth.revocation import revoke_token, revoke_user
    from .operate import with_connection

    if (jti is None) == (user_id is None):
        raise click.UsageError("give --jti or --user (one of them)")

    async def revoke(conn: Any) -> None:
        if jti is not None:
            # Kept for a year at most: longer than any token this server issues lives.
            await revoke_token(conn, jti, time.time() + 366 * 86400)
        else:
            assert user_id is not None
            await revoke_user(conn, user_id)

    with user_errors():
        with_connection(config_file, revoke)
    click.echo(f"revoked {'token ' + jti if jti else 'every token of user ' + str(user_id)}")


def _parse_input(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(
                f"cannot read {text[1:]}: {exc}", param_hint="--input"
            ) from None
    try:
        return loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--input") from None


@main.command("migrate")
@config_argument
def migrate_command(config_file: Path) -> None:
    """Apply the app's pending migrations (migrations/*.sql, in file-name order)."""
    from ..db.migrate import apply_migrations
    from ..runtime import resolve_dsn

    with user_errors():
        config = load_config(config_file)
        configure_logging(config.logging.level, config.logging.format)
        migration = apply_migrations(
            resolve_dsn(config), config.migrations, run_role=config.database.role
        )
        applied = run_loop(migration)
    app_applied = [name.split(":", 1)[1] for name in applied if name.startswith("app:")]
    for name in app_applied:
        click.echo(f"applied {name}")
    if not app_applied:
        click.echo("nothing to apply: the database is up to date")


@main.command("seed")
@config_argument
@click.option("--fresh", is_flag=True, help="Forget which seeds ran and run every seed again.")
@click.option(
    "--yes", is_flag=True, help="Allow --fresh on a database other than the embedded one."
)
def seed_command(config_file: Path, fresh: bool, yes: bool) -> None:
    """Run the app's seeds that have not run yet (seeds/*.sql, and seeds/*.py with
    `async def seed(ctx)`), after applying pending migrations."""
    from ..config import EMBEDDED
    from ..db.dsn import describe_dsn
    from ..errors import ActionsServerError
    from ..runtime import open_runtime, resolve_dsn
    from ..seeds import SeedReport, run_seeds

    with user_errors():
        config, registry = _load(config_file)
        dsn = resolve_dsn(config)
        if fresh and config.database.url != EMBEDDED and not yes:
            raise ActionsServerError(
                f"--fresh runs every seed again on {describe_dsn(dsn)}, which is not the "
                "embedded database: seeds that insert would insert twice. Add --yes if this "
                "database may take it"
            )

        async def seed() -> SeedReport:
            async with open_runtime(config, registry, dsn=dsn) as runtime:
                return await run_seeds(runtime, fresh=fresh)

        report = run_loop(seed())
    for name in report.applied:
        click.echo(f"seeded {name}")
    if not report.applied:
        click.echo("nothing to seed: every seed has run")
    for name in report.changed:
        click.echo(
            f"seed {name} changed since it ran, and was not run again: put the change in a "
            "new seed, or run every seed again with --fresh",
            err=True,
        )
    if report.changed:
        sys.exit(1)
