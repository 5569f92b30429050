"""`serve` and `worker`: running the app."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..config import Config, load_config
from ..logs import configure_logging
from ..registry import Registry
from ..serving import ServeOptions, check_secrets, serve
from .common import _load, config_argument, main, user_errors


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
@click.option("--dev", is_flag=True, help="Development mode: the same as `actions-server dev`.")
def serve_command(
    config_file: Path,
    host: str | None,
    port: int | None,
    workers: int,
    no_migrate: bool,
    no_worker: bool,
    reload: bool,
    dev: bool,
) -> None:
    """Serve the app over HTTP, and run its jobs and cron schedules (`--reload` or
    `dev` for development)."""
    if (reload or dev) and workers > 1:
        raise click.UsageError(
            f"--{'dev' if dev else 'reload'} runs one process (it is for development): "
            "drop --workers"
        )
    _serve(config_file, host, port, workers, no_migrate, no_worker, reload or dev, dev)


@main.command("dev")
@config_argument
@click.option("--host", help="Interface to listen on (default: server.host).")
@click.option("--port", type=int, help="Port to listen on (default: server.port).")
@click.option("--no-migrate", is_flag=True, help="Apply neither pending migrations nor seeds.")
@click.option("--no-worker", is_flag=True, help="Serve HTTP only: no job worker, no scheduler.")
def dev_command(
    config_file: Path, host: str | None, port: int | None, no_migrate: bool, no_worker: bool
) -> None:
    """Serve for development: reload on save, a log line per request, pretty logs, the
    dashboard open without a token from this machine, and a banner of URLs."""
    _serve(config_file, host, port, 1, no_migrate, no_worker, True, True)


def _serve(
    config_file: Path,
    host: str | None,
    port: int | None,
    workers: int,
    no_migrate: bool,
    no_worker: bool,
    reload: bool,
    dev: bool,
) -> None:
    from ..runtime import resolve_dsn

    with user_errors():
        config, _ = _load_for_serving(config_file, dev)  # fail before starting anything
        options = ServeOptions(
            host=host or config.server.host,
            port=config.server.port if port is None else port,
            workers=workers,
            migrate_app=not no_migrate,
            jobs=not no_worker,
            reload=reload,
            dev=dev,
        )
        check_secrets(config, options.host)
        sys.exit(serve(config, resolve_dsn(config), options))


def _load_for_serving(config_file: Path, dev: bool) -> tuple[Config, Registry]:
    if not dev:
        return _load(config_file, sys.stdout)
    from ..builtins import load_app

    config = load_config(config_file)
    configure_logging(config.logging.level, "pretty", sys.stdout)  # people read these
    return config, load_app(config)


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
    from ..runtime import resolve_dsn

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
