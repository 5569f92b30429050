"""The decisions behind `serve --reload`, without a server: which config changes
apply live, which modules are the app's, which files are watched, and how the
scheduler swaps its schedules."""

from __future__ import annotations

import importlib
import os
import py_compile
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from watchfiles import Change

import actions_server
from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.reload import (
    AppFilter,
    app_modules,
    changed_settings,
    forget_app_modules,
    live_config,
    needs_restart,
    watch_paths,
)
from actions_server.scheduler import Scheduler
from support.apps import write_app

BEFORE = """
app: a
server: {port: 8080}
database: {url: postgresql://db/a, pool: {max: 10}}
auth: {roles: {reader: []}}
mail: {from: a@example.com}
"""


def configs(tmp_path: Path, after: str) -> tuple[Any, Any]:
    path = tmp_path / "config.yaml"
    path.write_text(BEFORE)
    old = load_config(path, env={})
    path.write_text(after)
    return old, load_config(path, env={})


def test_manifest_settings_and_roles_apply_live(tmp_path: Path) -> None:
    after = (
        BEFORE.replace("{reader: []}", "{reader: [items:read]}")
        + "actions: [more/]\nscheduler: {timezone: Europe/Paris}\n"
    )
    old, new = configs(tmp_path, after)
    assert changed_settings(old, new) == ["actions", "auth.roles", "scheduler.timezone"]
    assert needs_restart(old, new) == []
    live = live_config(old, new)
    assert live.actions == ("more/",)
    assert live.auth.roles == {"reader": ("items:read",)}
    assert live.scheduler.timezone == "Europe/Paris"


def test_settings_read_at_start_need_a_restart_and_keep_their_old_value(tmp_path: Path) -> None:
    after = (
        BEFORE.replace("8080", "9090")
        .replace("max: 10", "max: 20")
        .replace("a@example.com", "b@example.com")
        .replace("{reader: []}", "{reader: [x]}")
    )
    old, new = configs(tmp_path, after)
    assert needs_restart(old, new) == ["database.pool.max", "mail.from", "server.port"]
    live = live_config(old, new)
    assert (live.server.port, live.database.pool.max) == (8080, 10)
    assert live.mail.sender == "a@example.com"
    assert live.auth.roles == {"reader": ("x",)}


def module(name: str, file: str | None = None, path: list[str] | None = None) -> ModuleType:
    made = ModuleType(name)
    if file is not None:
        made.__file__ = file
    if path is not None:
        made.__path__ = path
    return made


def test_app_modules_are_those_imported_from_the_app_folder(tmp_path: Path) -> None:
    root = tmp_path / "app"
    modules = {
        "handlers": module("handlers", f"{root}/handlers.py"),
        "pkg": module("pkg", f"{root}/pkg/__init__.py"),
        "pkg.users": module("pkg.users", f"{root}/pkg/users.py"),
        "ns": module("ns", path=[f"{root}/ns"]),  # a folder without __init__.py
        # A package installed in a .venv inside the app's folder is not the app's.
        "requests": module("requests", f"{root}/.venv/lib/site-packages/requests/__init__.py"),
        # Nor is the framework, even from an editable install under the folder.
        "actions_server": module("actions_server", f"{root}/server/actions_server/__init__.py"),
        "json": sys.modules["json"],
        "blocked": None,
    }
    assert sorted(app_modules(modules, root)) == ["handlers", "ns", "pkg", "pkg.users"]


def test_the_app_folder_may_be_on_the_path_under_another_name(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    link = tmp_path / "link"
    link.symlink_to(root)
    modules = {"handlers": module("handlers", f"{link}/handlers.py")}
    assert app_modules(modules, root) == []
    assert app_modules(modules, root, [str(link)]) == ["handlers"]


def test_the_framework_is_never_an_app_module_even_when_served_from_its_repository() -> None:
    repository = Path(actions_server.__file__).resolve().parents[2]
    names = app_modules(dict(sys.modules), repository, sys.path)
    assert not [n for n in names if n.split(".")[0] in ("actions_server", "support", "tests")]


def test_a_forgotten_module_is_imported_from_its_source_even_with_fresh_looking_bytecode(
    tmp_path: Path,
) -> None:
    package = f"reloaded_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    source = tmp_path / package / "values.py"
    source.write_text("VALUE = 1\n")
    py_compile.compile(str(source), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    stat = source.stat()
    sys.path.insert(0, str(tmp_path))
    try:
        assert importlib.import_module(f"{package}.values").VALUE == 1
        # The same size and the same mtime: the .pyc still looks current.
        source.write_text("VALUE = 2\n")
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert forget_app_modules(tmp_path) == 2
        assert importlib.import_module(f"{package}.values").VALUE == 2
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.split(".")[0] == package]:
            del sys.modules[name]


@pytest.mark.parametrize(
    ("relative", "watched"),
    [
        ("config.yaml", True),
        ("actions/users.yaml", True),
        ("schemas/user.json", True),
        ("pkg/handlers.py", True),
        ("templates/mail/welcome.html.j2", True),
        ("templates/page.html", True),
        ("README.md", False),
        ("migrations/001.sql", False),
        (".actions-server/pgdata/base/1/1259", False),
        (".actions-server/storage/a.yaml", False),
        ("uploads/a.yaml", False),  # storage.path
        ("pkg/__pycache__/handlers.cpython-311.pyc", False),
        (".venv/lib/site-packages/x.py", False),
        ("actions/.users.yaml.swp", False),
        ("actions/users.yaml~", False),
    ],
)
def test_which_changes_trigger_a_reload(tmp_path: Path, relative: str, watched: bool) -> None:
    (tmp_path / "config.yaml").write_text("app: a\nstorage: {path: uploads}\n")
    accepts = AppFilter(load_config(tmp_path / "config.yaml", env={}))
    assert accepts(Change.modified, str(tmp_path / relative)) is watched


def test_folders_outside_the_app_are_watched_too(tmp_path: Path) -> None:
    app, shared = tmp_path / "app", tmp_path / "shared"
    for folder in (app / "actions", shared / "schemas", shared / "actions"):
        folder.mkdir(parents=True)
    (app / "config.yaml").write_text(
        "app: a\nactions: [actions/, ../shared/actions/*.yaml, ../missing/]\n"
        "schemas: ../shared/schemas\n"
    )
    config = load_config(app / "config.yaml", env={})
    assert watch_paths(config) == (app, shared / "actions", shared / "schemas")


def cron_manifest(schedules: dict[str, str]) -> str:
    """A manifest with one no-op action per (name, cron expression)."""
    actions = "".join(
        f"  - name: {name}\n    handler: PKG.handlers:noop\n    triggers: [{{cron: '{cron}'}}]\n"
        for name, cron in schedules.items()
    )
    return f"module: c\nactions:\n{actions}"


async def test_the_scheduler_keeps_unchanged_schedules_and_swaps_the_rest(tmp_path: Path) -> None:
    yearly = {"c.same": "0 0 1 1 *", "c.changed": "0 0 1 1 *", "c.removed": "0 0 1 1 *"}
    handlers = "async def noop(input, ctx):\n    return None\n"
    config_file, package = write_app(tmp_path, {"c.yaml": cron_manifest(yearly)}, handlers)
    config = load_config(config_file, env={})
    scheduler = Scheduler(config, load_app(config), database=None)  # type: ignore[arg-type]
    scheduler.start()
    try:
        before = scheduler.next_fire_times()
        changed = {"c.same": "0 0 1 1 *", "c.changed": "0 0 1 2 *", "c.added": "0 0 1 3 *"}
        manifest = cron_manifest(changed).replace("PKG", package)
        (tmp_path / "actions" / "c.yaml").write_text(manifest)
        registry = load_app(config)
        scheduler.use_registry(registry)
        after = scheduler.next_fire_times()
    finally:
        scheduler.stop()
    assert scheduler.registry is registry
    assert after["c.same#0"] == before["c.same#0"]  # its tick is neither lost nor repeated
    assert (after["c.changed#0"].month, after["c.added#0"].month) == (2, 3)  # type: ignore[union-attr]
    assert "c.removed#0" not in after


async def test_an_action_may_have_several_cron_triggers(tmp_path: Path) -> None:
    manifest = (
        "module: c\nactions:\n  - name: c.twice\n    handler: PKG.handlers:noop\n"
        "    triggers: [{cron: '0 0 1 1 *'}, {cron: '0 0 1 7 *'}]\n"
    )
    handlers = "async def noop(input, ctx):\n    return None\n"
    config_file, _ = write_app(tmp_path, {"c.yaml": manifest}, handlers)
    config = load_config(config_file, env={})
    scheduler = Scheduler(config, load_app(config), database=None)  # type: ignore[arg-type]
    scheduler.start()
    try:
        fires = scheduler.next_fire_times()
    finally:
        scheduler.stop()
    assert {fires["c.twice#0"].month, fires["c.twice#1"].month} == {1, 7}  # type: ignore[union-attr]
