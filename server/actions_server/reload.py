"""`serve --reload`: watch the app's files and swap in a new registry when they change.

For development, in one process. After each batch of changes (watchfiles, with a
short debounce) the config and every manifest are loaded again, and the app's own
Python modules are imported afresh when a `.py` file changed. Only when all of it
is valid does the new registry replace the old one, in one synchronous step on the
event loop: routes and guards (HttpFront and the executor), event subscriptions
(read from the executor's registry by the worker and by `ctx.queue`/`ctx.event`)
and cron schedules (the Scheduler). Every table changes between two steps of
the loop; a request or job already running keeps the action it matched.
Anything invalid leaves the last good registry serving and logs every problem
as `file:line: what is wrong`, as `actions-server validate` prints it; the next
save that fixes it applies without a restart.

What was read from config.yaml when the process started (the database, the
server's port, pool sizes, the storage backend, ...) cannot change under a
running server: a reload applies the settings the registry is built from and
`auth.roles` (LIVE_SETTINGS), and warns that the rest needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from watchfiles import Change, DefaultFilter, awatch

from .builtins import load_app
from .config import STATE_DIR, Config, load_config
from .errors import LoadError, Problem
from .http.app import HttpFront
from .manifests.loader import MANIFEST_SUFFIXES
from .registry import Registry, counts
from .runtime import Runtime
from .scheduler import Scheduler

log = logging.getLogger("actions_server.reload")

# The longest a burst of saves (an editor writing several files, a `git checkout`)
# is gathered before reloading, and the quiet time that ends a burst earlier.
DEBOUNCE_MS = 300
STEP_MS = 30

# Settings a reload applies; any other change to config.yaml needs a restart.
LIVE_SETTINGS = frozenset({"actions", "schemas", "scheduler.timezone", "auth.roles"})

SOURCE_SUFFIXES = (*MANIFEST_SUFFIXES, ".json", ".py")
IGNORED_DIRS = (*DefaultFilter.ignore_dirs, "venv", ".ruff_cache", STATE_DIR)
_GLOB_CHARS = frozenset("*?[")
_SHOWN_KEYS = {"sender": "from"}  # Config field → its key in config.yaml, where they differ


# --- what to watch (pure) ------------------------------------------------------------


def template_folders(config: Config) -> tuple[Path, ...]:
    return (config.root / "templates", (config.root / config.mail.templates).resolve())


def watch_paths(config: Config) -> tuple[Path, ...]:
    """The app's folder, and the action, schema and template folders that lie outside it."""
    candidates = [
        config.root,
        *(_static_part(config.root, pattern) for pattern in config.actions),
        *([config.schemas] if config.schemas else []),
        *template_folders(config),
    ]
    paths: list[Path] = []
    for candidate in candidates:
        # A file is watched through its folder: editors often save by replacing it.
        folder = candidate.parent if candidate.is_file() else candidate
        if folder.is_dir() and not any(folder.is_relative_to(p) for p in paths):
            paths.append(folder)
    return tuple(paths)


def _static_part(root: Path, pattern: str) -> Path:
    """The folder or file an `actions:` entry names, or the part of a glob before its
    first wildcard."""
    static: list[str] = []
    for part in Path(pattern).parts:
        if _GLOB_CHARS & set(part):
            break
        static.append(part)
    return root.joinpath(*static).resolve()


class AppFilter(DefaultFilter):
    """The changes that can change the app: config.yaml, manifests, schemas, Python
    modules and templates; never the state folder (the embedded database writes
    there all the time), stored files, or tool caches and editor swap files."""

    def __init__(self, config: Config) -> None:
        storage = (config.root / config.storage.path).resolve()
        super().__init__(ignore_dirs=IGNORED_DIRS, ignore_paths=(f"{storage}{os.sep}",))
        self.config_file = str(config.file)
        self.templates = tuple(f"{folder}{os.sep}" for folder in template_folders(config))

    def __call__(self, change: Change, path: str) -> bool:
        if path == self.config_file:
            return True
        if not super().__call__(change, path):
            return False
        return path.endswith(SOURCE_SUFFIXES) or path.startswith(self.templates)


# --- what changed in config.yaml (pure) ------------------------------------------------


def changed_settings(old: Config, new: Config) -> list[str]:
    """The dotted config keys whose values differ, e.g. `["server.port", "auth.roles"]`."""
    return sorted(_differences(old, new, ()))


def _differences(old: Any, new: Any, path: tuple[str, ...]) -> Iterator[str]:
    if old == new:
        return
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        for field in dataclasses.fields(old):
            if field.compare:
                yield from _differences(
                    getattr(old, field.name), getattr(new, field.name), (*path, field.name)
                )
    elif path == ("sections",):  # top-level sections kept as plain mappings
        yield from (k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    else:
        yield ".".join(_SHOWN_KEYS.get(part, part) for part in path)


def needs_restart(old: Config, new: Config) -> list[str]:
    """The changed settings a reload cannot apply."""
    return [key for key in changed_settings(old, new) if key not in LIVE_SETTINGS]


def live_config(running: Config, new: Config) -> Config:
    """`running` with the LIVE_SETTINGS taken from `new`."""
    return dataclasses.replace(
        running,
        actions=new.actions,
        schemas=new.schemas,
        scheduler=dataclasses.replace(running.scheduler, timezone=new.scheduler.timezone),
        auth=dataclasses.replace(running.auth, roles=new.auth.roles),
        lines=new.lines,  # where problems in the new file are
    )


# --- the app's modules -------------------------------------------------------------------


def app_modules(
    modules: Mapping[str, ModuleType | None], root: Path, search_path: Iterable[str] = ()
) -> list[str]:
    """The modules imported from the app's folder: handler and guard modules and what
    they import from there, i.e. each whose file is where the folder on sys.path puts
    its name. The framework and third-party packages never qualify, not even when they
    live under the folder (an editable install, a `.venv`): their names do not match
    their paths from there. `search_path` (sys.path) may spell the folder otherwise
    (through a symbolic link, or as the working directory)."""
    folders = {str(root)}
    for entry in search_path:
        spelled = os.path.abspath(entry) if entry else os.getcwd()
        if spelled != str(root) and os.path.realpath(spelled) == str(root):
            folders.add(spelled)
    prefixes = tuple(folder + os.sep for folder in folders)
    found = []
    for name, module in modules.items():
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and not file.startswith(prefixes):
            continue  # most modules: no need to look closer
        relative = os.path.join(*name.split("."))
        if isinstance(file, str):
            expected = (os.path.join(relative, "__init__.py"), f"{relative}.py")
            if any(file == os.path.join(f, e) for f in folders for e in expected):
                found.append(name)
        else:  # a namespace package (a folder without __init__.py) has only a path
            locations = list(getattr(module, "__path__", None) or ())
            if any(os.path.join(f, relative) in locations for f in folders):
                found.append(name)
    return found


def forget_app_modules(root: Path) -> int:
    """Drop the app's modules, so that loading the registry imports them from disk.

    Their cached bytecode goes too: a `.pyc` is trusted when the source's mtime
    (in whole seconds) and size match, so an edit within a second of the last
    import that keeps the size (`1` → `2`) would otherwise run the old code.
    Actions of the registry still serving keep their functions, and through them
    their modules, until the swap.
    """
    names = app_modules(dict(sys.modules), root, sys.path)
    for name in names:
        module = sys.modules.pop(name, None)
        cached = getattr(module, "__cached__", None)
        if isinstance(cached, str):
            with contextlib.suppress(OSError):
                os.remove(cached)
    importlib.invalidate_caches()  # the finders' directory listings: new files
    return len(names)


# --- the reloader ----------------------------------------------------------------------------


class Reloader:
    """Watches the app of `runtime` and swaps a new registry into the running parts."""

    def __init__(
        self, runtime: Runtime, front: HttpFront | None, scheduler: Scheduler | None
    ) -> None:
        self.runtime = runtime
        self.front = front
        self.scheduler = scheduler
        self.reloads = 0
        self.refusals = 0

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload after every batch of changes until `stop` is set."""
        # watchfiles logs every batch at info; the reload's own line says what changed.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        while not stop.is_set():
            config = self.runtime.config
            paths = watch_paths(config)
            shown = ", ".join(config.relative(p) if p != config.root else "." for p in paths)
            log.info("watching %s for changes (--reload is for development only)", shown)
            try:
                async for changes in awatch(
                    *paths,
                    watch_filter=AppFilter(config),
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=stop,
                ):
                    self.reload({Path(path) for _, path in changes})
                    if watch_paths(self.runtime.config) != paths:
                        break  # `actions:` or `schemas:` now name other folders
            except Exception as exc:  # e.g. the OS's limit on watched folders
                log.error("cannot watch for changes, reloading is off: %s", exc)
                return

    def reload(self, changed: Collection[Path] = ()) -> Registry | None:
        """Load the app again and swap it in; None (the old one keeps serving) if invalid."""
        started = time.perf_counter()
        running = self.runtime.config
        try:
            # Relative to the working directory, problems name the file as it was given.
            new = load_config(os.path.relpath(running.file))
            pending = needs_restart(running, new)
            config = live_config(running, new)
            if any(path.suffix == ".py" for path in changed):
                forget_app_modules(config.root)
            registry = load_app(config)
            self._swap(config, registry)
        except LoadError as exc:
            self._refuse(exc.problems)
            return None
        except Exception:  # an unforeseen bug must not take the server down with it
            log.exception("reload failed; still serving the previous version")
            self.refusals += 1
            return None
        self.reloads += 1
        if pending:
            log.warning(
                "%s: %s changed, which needs a restart: the server keeps the old value until then",
                running.relative(running.file),
                ", ".join(pending),
            )
        elapsed = (time.perf_counter() - started) * 1000
        log.info("reloaded in %.0f ms%s: %s", elapsed, _files(changed, config), counts(registry))
        return registry

    def _swap(self, config: Config, registry: Registry) -> None:
        """Everything at once: nothing here awaits, so no request sees half of it."""
        if self.front is not None:
            self.front.use_registry(registry)  # routes, and the executor's guards
        else:
            self.runtime.executor.use_registry(registry)
            self.runtime.registry = registry
        if self.scheduler is not None:
            self.scheduler.use_registry(registry)
        self.runtime.executor.auth.use_roles(config.auth)
        self.runtime.config = config

    def _refuse(self, problems: Collection[Problem]) -> None:
        self.refusals += 1
        count = len(problems)
        log.error(
            "reload refused, still serving the previous version: %d problem%s",
            count,
            "" if count == 1 else "s",
        )
        for problem in problems:
            log.error("%s", problem)


def _files(changed: Collection[Path], config: Config, most: int = 3) -> str:
    names = sorted(config.relative(path) for path in changed)
    if not names:
        return ""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f" ({', '.join(names[:most])}{more})"
