"""`actions-server init` and `new action`: files written from templates in the package.

`init` renders `app/` (Jinja2, `.tmpl` files, so no tool mistakes them for the
framework's own code) into a folder; nothing comes from the network. Every path
it writes is checked to stay inside that folder, symbolic links included.

`new action` adds one action to an existing app: an entry at the end of the
module's manifest (made if missing), a handler at the end of its module, and a
test. The app is loaded again afterwards; if it does not validate, every file is
put back as it was and the problems are reported.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jinja2

from ..errors import ActionsServerError

TEMPLATES = Path(__file__).with_name("app")
_RENAMED = {"gitignore": ".gitignore", "dockerignore": ".dockerignore"}
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}\Z")


class ScaffoldError(ActionsServerError):
    """A folder or name `init` or `new action` cannot use; the message says why."""


def framework_version() -> str:
    try:
        return version("actions-server")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0.1.0"


def app_name_for(folder: Path) -> str:
    """A default app name: the folder's, lower-cased, with other characters as '-'."""
    name = re.sub(r"[^a-z0-9_-]+", "-", folder.resolve().name.lower()).strip("-_")
    return name if name and name[0].isalpha() else f"app-{name}".rstrip("-")


def check_app_name(name: str) -> str:
    if not _NAME.match(name):
        raise ScaffoldError(
            f"app name {name!r}: use lower-case letters, digits, '-' and '_', "
            "starting with a letter (at most 63 characters)"
        )
    return name


def init_app(folder: Path, name: str, *, force: bool = False) -> list[Path]:
    """Write a new app into `folder`; the files written, relative to it."""
    check_app_name(name)
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ScaffoldError(
            f"{folder} is not empty: choose an empty or new folder, or pass --force "
            "to write the app's files over whatever has the same names"
        )
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    values = {
        "name": name,
        "secret": secrets.token_hex(16),
        "framework_version": framework_version(),
    }
    written = []
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = template.relative_to(TEMPLATES).with_suffix("")
        relative = relative.with_name(_RENAMED.get(relative.name, relative.name))
        target = inside(root, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = env.get_template(template.relative_to(TEMPLATES).as_posix()).render(values)
        target.write_text(text, encoding="utf-8")
        written.append(relative)
    return written


def inside(root: Path, relative: Path) -> Path:
    """`root / relative`, refused if it (or a symbolic link on the way) leads outside root."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ScaffoldError(f"refusing to write {root / relative}: it leads outside {root}")
    return target


# --- new action -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAction:
    name: str  # module.action
    trigger: str  # the trigger's YAML, e.g. "api: POST /notes"
    kind: str  # api, event or cron
    method: str = ""
    path: str = ""


_ACTION_NAME = re.compile(r"([a-z][a-zA-Z0-9_]*)\.([a-zA-Z][a-zA-Z0-9_.]*)\Z")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def new_action_spec(name: str, api: str | None, event: str | None, cron: str | None) -> NewAction:
    if not _ACTION_NAME.match(name):
        raise ScaffoldError(
            f"action name {name!r}: write it as module.action (e.g. notes.create), "
            "the module in lower case"
        )
    given = [t for t in (api, event, cron) if t is not None]
    if len(given) != 1:
        raise ScaffoldError('give one trigger: --api "POST /path", --event NAME or --cron "EXPR"')
    if api is not None:
        method, _, path = api.strip().partition(" ")
        method, path = method.upper(), path.strip()
        if method not in _METHODS or not path.startswith("/"):
            raise ScaffoldError(
                f'--api {api!r}: write it as "METHOD /path" with METHOD one of '
                f'{", ".join(_METHODS)} (e.g. "POST /notes")'
            )
        return NewAction(
            name=name, trigger=f"api: {method} {path}", kind="api", method=method, path=path
        )
    if event is not None:
        return NewAction(name=name, trigger=f"event: {event}", kind="event")
    assert cron is not None
    return NewAction(name=name, trigger=f'cron: "{cron}"', kind="cron")


def snake(word: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", word.replace(".", "_")).lower()


@contextmanager
def restored_on_error(paths: list[Path]) -> Iterator[None]:
    """Put `paths` back as they were (or remove them) if the block raises."""
    before = {p: p.read_bytes() if p.exists() else None for p in paths}
    try:
        yield
    except BaseException:
        for path, content in before.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        raise
