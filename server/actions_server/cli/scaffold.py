"""`init` and `new action`: a new app, and one more action in an app."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import DEFAULT_CONFIG, FullHelpGroup, main, user_errors


@main.command("init", cls=click.Command)
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The app's name (default: the folder's name).")
@click.option("--no-input", is_flag=True, help="Ask nothing: take the defaults (for scripts).")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
def init_command(folder: Path, name: str | None, no_input: bool, force: bool) -> None:
    """Write a new app into DIR: config, a first action and its test, a migration,
    pyproject.toml, README, Dockerfile."""
    from ..scaffold import app_name_for, check_app_name, init_app

    if name is None:
        name = app_name_for(folder)
        if not no_input and sys.stdin.isatty():
            name = click.prompt("App name", default=name)
    with user_errors():
        written = init_app(folder, check_app_name(name), force=force)
    for path in written:
        click.echo(f"  wrote {folder / path}")
    click.echo(
        f"\n{name} is ready. Next:\n"
        f"  cd {folder}\n"
        "  actions-server dev    # serve it, reloading on save; API docs at /docs\n"
        "  pytest                # run its tests"
    )


@main.group("new", cls=FullHelpGroup)
def new_group() -> None:
    """Add to an existing app: `new action NAME --api "POST /path"`."""


@new_group.command("action", cls=click.Command)
@click.argument("name")
@click.option("--api", metavar='"METHOD /PATH"', help='An HTTP route, e.g. "POST /notes".')
@click.option("--event", metavar="EVENT", help="An event name, e.g. note.created.")
@click.option("--cron", metavar='"EXPR"', help='A cron schedule, e.g. "0 * * * *".')
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="The app's config file.",
)
def new_action_command(
    name: str, api: str | None, event: str | None, cron: str | None, config_file: Path
) -> None:
    """Add action NAME (module.action): a manifest entry, a handler and a test; the app
    must still validate, or nothing is changed."""
    from ..config import load_config
    from ..scaffold import new_action_spec
    from ..scaffold.actions import add_action

    with user_errors():
        spec = new_action_spec(name, api, event, cron)
        config = load_config(config_file)
        changed = add_action(config, spec)
    for path in changed:
        click.echo(f"  wrote {config.relative(path)}")
    click.echo(f"added {name}: fill in its schemas and handler, then run its test")
