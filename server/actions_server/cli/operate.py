"""`jobs` and `mail`: looking after a running app."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from textwrap import indent
from typing import Any

import click

from ..config import load_config
from ..logs import configure_logging
from ..serving import run_loop
from .common import ConfigGroup, config_argument, main, user_errors


@main.group("jobs", cls=ConfigGroup)
def jobs_group() -> None:
    """List, retry and cancel jobs: `jobs list [CONFIG]`."""


def with_connection(config_file: Path, work: Callable[[Any], Any]) -> Any:
    """Run `work(conn)` on a connection to the app's database (framework tables migrated)."""
    import psycopg
    from psycopg.rows import dict_row

    from ..db.migrate import apply_migrations
    from ..runtime import resolve_dsn

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
@config_argument
@click.option("--status", type=click.Choice(["queued", "running", "done", "dead", "cancelled"]))
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
def jobs_list(config_file: Path, status: str | None, limit: int) -> None:
    """The newest jobs, one line each (with the last error of failed ones)."""
    from ..queue import store

    with user_errors():
        rows = with_connection(config_file, lambda conn: store.list_jobs(conn, status, limit))
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
@config_argument
@click.argument("job_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Retry every dead job.")
def jobs_retry(config_file: Path, job_id: int | None, all_dead: bool) -> None:
    """Queue a dead (or cancelled) job again, with its attempts reset."""
    from ..queue import store

    if (job_id is None) == (not all_dead):
        raise click.UsageError("give a job id or --all-dead")
    with user_errors():
        retried = with_connection(
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
@config_argument
@click.argument("job_id", type=int)
def jobs_cancel(config_file: Path, job_id: int) -> None:
    """Cancel a job: a queued or dead one at once; a running one is stopped by its
    worker at the handler's next await (within a heartbeat at worst)."""
    from ..queue import store

    with user_errors():
        outcome = with_connection(config_file, lambda conn: store.cancel(conn, job_id))
    if outcome is None:
        click.echo(f"job {job_id} is not queued, running or dead", err=True)
        sys.exit(1)
    if outcome == "requested":
        click.echo(f"asked the worker running job {job_id} to cancel it")
    else:
        click.echo(f"cancelled job {job_id}")


@main.group("mail", cls=ConfigGroup)
def mail_group() -> None:
    """The outbox of the development mail transport: `mail list [CONFIG]`."""


@mail_group.command("list")
@config_argument
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--body", is_flag=True, help="Print the text of each message too.")
def mail_list(config_file: Path, limit: int, body: bool) -> None:
    """The newest messages in the outbox."""
    from ..mail.transports import Q

    async def recent(conn: Any) -> list[dict[str, Any]]:
        cursor = await conn.execute(Q["recent"], (limit,))
        rows: list[dict[str, Any]] = await cursor.fetchall()
        return rows

    with user_errors():
        rows = with_connection(config_file, recent)
    for row in rows:
        to = ", ".join(row["recipients"])
        click.echo(f"{row['id']:>6}  {row['created_at']:%Y-%m-%d %H:%M:%S}  {to}  {row['subject']}")
        if body:
            click.echo(indent(row["text_body"] or row["html_body"] or "", "        "))
    if not rows:
        click.echo("the outbox is empty")
