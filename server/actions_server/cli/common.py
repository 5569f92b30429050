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

DEFAULT_CONFIG = "config.yaml"
_CONFIG_SUFFIXES = (".yaml", ".yml")

config_argument = click.argument(
    "config_file",
    metavar="[CONFIG]",
    type=click.Path(dir_okay=False, path_type=Path),
)


def _looks_like_config(word: str) -> bool:
    return word.lower().endswith(_CONFIG_SUFFIXES)


def _given(value: object) -> bool:
    """Whether click's parser found a value (it marks the rest with None or a sentinel)."""
    return isinstance(value, str) or (isinstance(value, tuple) and bool(value))


class ConfigCommand(click.Command):
    """A command whose first argument, CONFIG, may be left out when it is `config.yaml`.

    The first positional word is taken as CONFIG when it ends in `.yaml` or
    `.yml`, or when every argument of the command is given; otherwise
    `config.yaml` (in the current folder) is put in front. Options may come
    anywhere, as click allows.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        declared = [p for p in self.params if isinstance(p, click.Argument)]
        takes_config = bool(declared) and declared[0].name == "config_file"
        if takes_config and not any(a in ("-h", "--help") for a in args):
            try:
                values: dict[str, Any] | None = self.make_parser(ctx).parse_args(args=list(args))[0]
            except click.UsageError:
                values = None  # let the real parse report it
            if values is not None:
                given = sum(1 for p in declared if _given(values.get(p.name or "")))
                first = values.get("config_file")
                if given == 0 or (not _looks_like_config(str(first)) and given < len(declared)):
                    if not Path(DEFAULT_CONFIG).is_file():
                        raise click.UsageError(
                            f"no {DEFAULT_CONFIG} in {Path.cwd()}: run this in the app's folder, "
                            f"or name the config file ({ctx.command_path} PATH.yaml)",
                            ctx,
                        )
                    args = [DEFAULT_CONFIG, *args]
        return super().parse_args(ctx, args)


class FullHelpGroup(click.Group):
    """Lists each command with its whole first paragraph, not click's 45 characters."""

    command_class = ConfigCommand

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class ConfigGroup(FullHelpGroup):
    """A group of commands that each take [CONFIG]: `jobs list [CONFIG]`.

    The older order, CONFIG before the command (`jobs config.yaml list`), is
    still understood: a first word that names no command but a config file is
    moved after the command.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if (
            len(args) >= 2
            and args[0] not in self.commands
            and _looks_like_config(args[0])
            and args[1] in self.commands
        ):
            args = [args[1], args[0], *args[2:]]
        return super().parse_args(ctx, args)


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


@click.group(
    cls=FullHelpGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="actions-server")
def main() -> None:
    """A declarative, YAML-driven action server.

    Every command that reads an app takes its config file as [CONFIG], which
    defaults to config.yaml in the current folder. Groups put the command first:
    `jobs list [CONFIG]`, `mail list [CONFIG]`, `token issue [CONFIG]`.
    """


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


class DefaultGroup(ConfigGroup):
    """A group whose `default` command runs when the first word names no command:
    `token --user U` means `token issue --user U`."""

    def __init__(self, *args: Any, default: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        moved = len(args) >= 2 and _looks_like_config(args[0]) and args[1] in self.commands
        if not args or (
            args[0] not in self.commands and args[0] not in ("-h", "--help") and not moved
        ):
            args = [self.default, *args]
        return super().parse_args(ctx, args)
