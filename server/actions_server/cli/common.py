"""What every command shares: the config argument, loading, and errors a user can fix
(a message and exit code 1, never a traceback)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from ..builtins import load_app
from ..config import Config, load_config
from ..errors import ActionError, ActionsServerError, LoadError
from ..logs import configure_logging
from ..registry import Registry

if TYPE_CHECKING:
    from ..guards import Caller

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

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
    return config, load_app(config)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="actions-server")
def main() -> None:
    """A declarative, YAML-driven action server."""


def caller_option(func: F) -> F:
    """--user (with --role, --permission), --org and --system: who a command runs as."""
    for option in reversed(
        (
            click.option(
                "--user", "user_id", help="Run as this user id (guards see an authenticated user)."
            ),
            click.option("--role", "roles", multiple=True, help="A role of --user (repeatable)."),
            click.option(
                "--permission",
                "permissions",
                multiple=True,
                help="A permission of --user (repeatable).",
            ),
            click.option(
                "--org", "org_id", help="The org to act in, as the x-org-id header would name it."
            ),
            click.option(
                "--system", is_flag=True, help="Run as the system principal, as cron does."
            ),
        )
    ):
        func = option(func)
    return func


def caller_from(
    user_id: str | None,
    roles: tuple[str, ...],
    permissions: tuple[str, ...],
    org_id: str | None,
    system: bool,
) -> Caller:
    """The Caller the options of `caller_option` describe: anonymous unless told."""
    from ..auth import SYSTEM, USER_KIND, Principal
    from ..guards import Caller

    if system and user_id:
        raise click.UsageError("--system and --user exclude each other")
    if (roles or permissions) and not user_id:
        raise click.UsageError("--role and --permission need --user")
    principal = SYSTEM if system else Principal()
    if user_id:
        principal = Principal(
            kind=USER_KIND,
            user_id=user_id,
            roles=frozenset(roles),
            permissions=frozenset(permissions),
            claims={"sub": user_id},
        )
    return Caller(principal=principal, org_header=org_id)


class DefaultGroup(click.Group):
    """A group whose `default` command runs when the first word names no command:
    `token CONFIG --user U` means `token issue CONFIG --user U`."""

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default, *args]
        return super().parse_args(ctx, args)
