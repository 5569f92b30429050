"""The `actions-server` command line.

Every command takes the config file first. Errors a user can fix (problems in
the config or manifests, a database that cannot be reached, a failing
migration) print what is wrong and exit 1 without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import indent
from typing import Any, TextIO, TypeVar

import click

from .config import Config, load_config
from .errors import ActionError, ActionsServerError, LoadError
from .http.errors import error_body
from .jsonutil import dumps_pretty, loads
from .logs import configure_logging
from .manifests.loader import manifest_schema
from .registry import Registry, load_registry
from .serving import ServeOptions, check_secrets, run_loop, serve

T = TypeVar("T")

config_argument = click.argument(
    "config_file", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path)
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn errors a user can fix into a message and exit code 1."""
    try:
        yield
    except LoadError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        sys.exit(1)
    except ActionError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except ActionsServerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _load(config_file: Path, log_to: TextIO | None = None) -> tuple[Config, Registry]:
    config = load_config(config_file)
    configure_logging(config.logging.level, config.logging.format, log_to)
    return config, load_registry(config)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="actions-server")
def main() -> None:
    """A declarative, YAML-driven action server."""


@main.command("serve")
@config_argument
@click.option("--host", help="Interface to listen on (default: server.host).")
@click.option("--port", type=int, help="Port to listen on (default: server.port).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT).",
)
@click.option("--no-migrate", is_flag=True, help="Do not apply the app's pending migrations.")
@click.option("--no-worker", is_flag=True, help="Serve HTTP only: no job worker, no scheduler.")
@click.option(
    "--reload",
    is_flag=True,
    help="For development only: watch the config, manifests, schemas, handler modules and "
    "templates, and swap in each valid change without a restart (one process).",
)
def serve_command(
    config_file: Path,
    host: str | None,
    port: int | None,
    workers: int,
    no_migrate: bool,
    no_worker: bool,
    reload: bool,
) -> None:
    """Serve the app over HTTP, and run its jobs and cron schedules."""
    from .runtime import resolve_dsn

    if reload and workers > 1:
        raise click.UsageError(
            "--reload runs one process (it is for development): drop --workers or --reload"
        )
    with user_errors():
        config, _ = _load(config_file, sys.stdout)  # fail before starting anything
        options = ServeOptions(
            host=host or config.server.host,
            port=config.server.port if port is None else port,
            workers=workers,
            migrate_app=not no_migrate,
            jobs=not no_worker,
            reload=reload,
        )
        check_secrets(config, options.host)
        sys.exit(serve(config, resolve_dsn(config), options))


@main.command("worker")
@config_argument
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to start.",
)
@click.option("--no-migrate", is_flag=True, help="Do not apply the app's pending migrations.")
def worker_command(config_file: Path, workers: int, no_migrate: bool) -> None:
    """Run the job worker and the cron scheduler, without HTTP."""
    from .runtime import resolve_dsn

    with user_errors():
        config, _ = _load(config_file, sys.stdout)
        options = ServeOptions(
            host=config.server.host,
            port=config.server.port,
            workers=workers,
            migrate_app=not no_migrate,
            http=False,
        )
        sys.exit(serve(config, resolve_dsn(config), options))


@main.command("validate")
@config_argument
def validate_command(config_file: Path) -> None:
    """Check the config and every manifest; list every problem (exit 1 if any)."""
    with user_errors():
        config, registry = _load(config_file)
        actions = sum(len(module.actions) for module in registry.modules)
        counts = f"{actions} actions in {len(registry.modules)} modules"
        click.echo(f"ok: {config.app}: {counts}, {len(registry.routes)} routes")


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


@main.command("openapi")
@config_argument
def openapi_command(config_file: Path) -> None:
    """Print the OpenAPI 3.1 document of every HTTP route, as GET /openapi.json serves it."""
    from .openapi import build_openapi

    with user_errors():
        config, registry = _load(config_file)
    click.echo(dumps_pretty(build_openapi(registry, config)))


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
@click.option("--user", "user_id", help="Run as this user id (guards see an authenticated user).")
@click.option("--role", "roles", multiple=True, help="A role of --user (repeatable).")
@click.option(
    "--permission", "permissions", multiple=True, help="A permission of --user (repeatable)."
)
@click.option("--org", "org_id", help="The org to act in, as the x-org-id header would name it.")
@click.option("--system", is_flag=True, help="Run as the system principal, as cron does.")
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
    from .auth import SYSTEM, USER_KIND, Principal
    from .executor import new_trace_id
    from .guards import Caller
    from .runtime import open_runtime, resolve_dsn

    if system and user_id:
        raise click.UsageError("--system and --user exclude each other")
    if (roles or permissions) and not user_id:
        raise click.UsageError("--role and --permission need --user")
    with user_errors():
        config, registry = _load(config_file)
        spec = registry.action(action)
        if spec is None:
            raise click.BadParameter(f"no action named {action!r}", param_hint="ACTION")
        payload = _parse_input(input_text)
        principal = SYSTEM if system else Principal()
        if user_id:
            principal = Principal(
                kind=USER_KIND,
                user_id=user_id,
                roles=frozenset(roles),
                permissions=frozenset(permissions),
                claims={"sub": user_id},
            )
        caller = Caller(principal=principal, org_header=org_id)

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


@main.command("token")
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
    from .auth import AuthSetupError, TokenIssuer

    with user_errors():
        config = load_config(config_file)
        try:
            token = TokenIssuer(config.auth.jwt).issue(
                user_id, roles=roles, permissions=permissions, ttl_seconds=ttl_seconds
            )
        except AuthSetupError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(token)


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
    from .db.migrate import apply_migrations
    from .runtime import resolve_dsn

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


@main.group("jobs")
@config_argument
@click.pass_context
def jobs_group(ctx: click.Context, config_file: Path) -> None:
    """List, retry and cancel jobs."""
    ctx.obj = config_file


def _with_connection(config_file: Path, work: Callable[[Any], Any]) -> Any:
    """Run `work(conn)` on a connection to the app's database (framework tables migrated)."""
    import psycopg
    from psycopg.rows import dict_row

    from .db.migrate import apply_migrations
    from .runtime import resolve_dsn

    config = load_config(config_file)
    configure_logging(config.logging.level, config.logging.format)
    dsn = resolve_dsn(config)

    async def go() -> Any:
        await apply_migrations(dsn, None)
        async with await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, row_factory=dict_row
        ) as conn:
            return await work(conn)

    return run_loop(go())


@jobs_group.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "done", "dead", "cancelled"]))
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_obj
def jobs_list(config_file: Path, status: str | None, limit: int) -> None:
    """The newest jobs, one line each (with the last error of failed ones)."""
    from .queue import store

    with user_errors():
        rows = _with_connection(config_file, lambda conn: store.list_jobs(conn, status, limit))
    for row in rows:
        error = row["last_error"] or {}
        tail = f"  {error.get('code')}: {error.get('message')}" if error else ""
        click.echo(
            f"{row['id']:>8}  {row['status']:<9} {row['kind']:<5} {row['action']:<32} "
            f"{row['attempts']}/{row['max_attempts']}  {row['run_at']:%Y-%m-%d %H:%M:%S}{tail}"
        )
    if not rows:
        click.echo("no jobs")


@jobs_group.command("retry")
@click.argument("job_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Retry every dead job.")
@click.pass_obj
def jobs_retry(config_file: Path, job_id: int | None, all_dead: bool) -> None:
    """Queue a dead (or cancelled) job again, with its attempts reset."""
    from .queue import store

    if (job_id is None) == (not all_dead):
        raise click.UsageError("give a job id or --all-dead")
    with user_errors():
        retried = _with_connection(
            config_file, lambda conn: store.retry(conn, None if all_dead else job_id)
        )
    for dead_id, holder in retried.held.items():
        click.echo(
            f"job {dead_id} stays dead: job {holder} holds its unique key (cancel that one first)",
            err=True,
        )
    if retried.queued:
        click.echo(f"queued again: {', '.join(str(i) for i in retried.queued)}")
    elif all_dead:
        click.echo("nothing to retry")
    else:
        if not retried.held:
            click.echo(f"job {job_id} is not dead or cancelled", err=True)
        sys.exit(1)


@jobs_group.command("cancel")
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_cancel(config_file: Path, job_id: int) -> None:
    """Cancel a job: a queued or dead one at once; a running one is stopped by its
    worker at the handler's next await (within a heartbeat at worst)."""
    from .queue import store

    with user_errors():
        outcome = _with_connection(config_file, lambda conn: store.cancel(conn, job_id))
    if outcome is None:
        click.echo(f"job {job_id} is not queued, running or dead", err=True)
        sys.exit(1)
    if outcome == "requested":
        click.echo(f"asked the worker running job {job_id} to cancel it")
    else:
        click.echo(f"cancelled job {job_id}")


@main.group("mail")
def mail_group() -> None:
    """The outbox of the development mail transport."""


@mail_group.command("list")
@config_argument
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--body", is_flag=True, help="Print the text of each message too.")
def mail_list(config_file: Path, limit: int, body: bool) -> None:
    """The newest messages in the outbox."""
    from .mail.transports import Q

    async def recent(conn: Any) -> list[dict[str, Any]]:
        cursor = await conn.execute(Q["recent"], (limit,))
        rows: list[dict[str, Any]] = await cursor.fetchall()
        return rows

    with user_errors():
        rows = _with_connection(config_file, recent)
    for row in rows:
        to = ", ".join(row["recipients"])
        click.echo(f"{row['id']:>6}  {row['created_at']:%Y-%m-%d %H:%M:%S}  {to}  {row['subject']}")
        if body:
            click.echo(indent(row["text_body"] or row["html_body"] or "", "        "))
    if not rows:
        click.echo("the outbox is empty")


@main.command("schema")
@click.argument("which", type=click.Choice(["manifest", "config"]), default="manifest")
def schema_command(which: str) -> None:
    """Print the JSON Schema of manifests or of config.yaml (for editors)."""
    from .config import config_schema

    schema: Callable[[], dict[str, Any]] = manifest_schema if which == "manifest" else config_schema
    click.echo(dumps_pretty(schema()))


if __name__ == "__main__":  # pragma: no cover
    main()
