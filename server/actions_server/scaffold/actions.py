"""`actions-server new action`: one more action in an existing app, with its test."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..builtins import load_app
from ..config import Config, load_config
from . import NewAction, ScaffoldError, restored_on_error, snake

_PARAM = re.compile(r":(\w+)|\{(\w+)\}")


def add_action(config: Config, spec: NewAction) -> list[Path]:
    """Add `spec` to the app of `config`; the files changed or made. The app is
    loaded again; if it does not validate, the files are put back and LoadError raised."""
    module, _, rest = spec.name.partition(".")
    folder = _actions_folder(config)
    manifest = folder / f"{module}.yaml"
    handlers = folder / f"{module}.py"
    tests = config.root / "tests" / f"test_{module}.py"
    function = snake(rest)
    package = ".".join((*folder.relative_to(config.root.resolve()).parts, module))
    trigger = spec.trigger
    if manifest.exists():
        text, prefix = _existing_manifest(manifest, spec.name)
        if spec.kind == "api":
            trigger = f"api: {spec.method} {_under(prefix, spec.path, manifest)}"
    else:
        text = f"module: {module}\nactions:\n"
    entry = (
        f"  - name: {spec.name}\n"
        f"    description: TODO say what {spec.name} does\n"
        f"    handler: {package}:{function}\n"
        "    input: {type: object, additionalProperties: true}\n"
        "    triggers:\n"
        f"      - {trigger}\n"
    )
    if handlers.exists() and re.search(rf"^async def {function}\(", handlers.read_text(), re.M):
        raise ScaffoldError(f"{handlers} already defines {function}()")
    changed = [manifest, handlers, tests]
    with restored_on_error(changed):
        manifest.write_text(_joined(text, entry), encoding="utf-8")
        handler_text = handlers.read_text() if handlers.exists() else _HANDLERS_HEAD.format(module)
        handlers.write_text(_joined(handler_text, _handler(spec.name, function), 2), "utf-8")
        tests.parent.mkdir(exist_ok=True)
        test_text = tests.read_text() if tests.exists() else _TESTS_HEAD.format(module)
        tests.write_text(_joined(test_text, _test(spec, function), 2), encoding="utf-8")
        load_app(load_config(config.file))  # raises LoadError listing every problem
    return changed


def _actions_folder(config: Config) -> Path:
    for entry in config.actions:
        folder = (config.root / entry).resolve()
        if folder.is_dir() and folder.is_relative_to(config.root.resolve()):
            return folder
    raise ScaffoldError(
        f"{config.file}: `actions` names no folder inside the app: add the action by hand"
    )


def _existing_manifest(manifest: Path, name: str) -> tuple[str, str]:
    """The manifest's text, ready for one more entry at its end, and its prefix."""
    text = manifest.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"{manifest} is not valid YAML ({exc}): fix it first") from None
    if not isinstance(data, dict):
        raise ScaffoldError(f"{manifest} is not a manifest: fix it first")
    actions = data.get("actions") or []
    if any(isinstance(a, dict) and a.get("name") == name for a in actions):
        raise ScaffoldError(f"{manifest} already has an action named {name!r}")
    keys = re.findall(r"^([A-Za-z_][\w-]*):", text, re.M)
    if not keys or keys[-1] != "actions":
        raise ScaffoldError(
            f"{manifest}: `actions:` is not its last section, so the new entry cannot go at "
            "the end: move `actions:` last, or add the action by hand"
        )
    text = re.sub(r"^actions:[ \t]*\[\][ \t]*$", "actions:", text, flags=re.M)
    if re.search(r"^actions:[ \t]*[^ \t\n#]", text, re.M):
        raise ScaffoldError(f"{manifest}: write `actions:` as a block list to add to it")
    return text, str(data.get("prefix") or "")


def _under(prefix: str, path: str, manifest: Path) -> str:
    """The path as the manifest writes it: relative to the module's prefix."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix) :] or "/"
    raise ScaffoldError(
        f"{manifest} serves its actions under {prefix}: give a path that starts with it"
    )


def _joined(text: str, more: str, blank_lines: int = 1) -> str:
    return text.rstrip("\n") + "\n" * (blank_lines + 1) + more if text.strip() else more


def _handler(name: str, function: str) -> str:
    return (
        f"async def {function}(input: dict[str, Any], ctx: Context) -> dict[str, Any]:\n"
        f'    """{name}: TODO say what it does."""\n'
        '    return {"ok": True}\n'
    )


def _test(spec: NewAction, function: str) -> str:
    head = f"async def test_{function}"
    if spec.kind == "api":
        path = _PARAM.sub("1", spec.path)
        return (
            f"{head}(client: Any) -> None:\n"
            f'    response = await client.{spec.method.lower()}("{path}")\n'
            "    assert response.status == 200, await response.text()\n"
            '    assert await response.json() == {"ok": True}\n'
        )
    if spec.kind == "cron":
        return (
            f"{head}(cron: Any) -> None:\n"
            f'    ran = await cron.fire("{spec.name}")\n'
            "    assert [(r.action, r.status) for r in ran] == "
            f'[("{spec.name}", "done")]\n'
        )
    return (
        f"{head}(call: Any) -> None:\n"
        f'    assert await call("{spec.name}", {{}}) == {{"ok": True}}\n'
    )


_HANDLERS_HEAD = '''"""The handlers of the {0} module."""

from __future__ import annotations

from typing import Any

from actions_server import Context
'''

_TESTS_HEAD = '''"""Tests of the {0} module, with the test kit (actions_server.testing)."""

from __future__ import annotations

from typing import Any
'''
