"""Handlers of two apps whose packages share a name, imported in one process."""

from __future__ import annotations

import sys
from pathlib import Path

from actions_server.manifests.imports import import_callable


def app_with(folder: Path, package: str, answer: str) -> Path:
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    (folder / package / "hello.py").write_text(
        f"async def hello(input, ctx):\n    return {answer!r}\n"
    )
    return folder


def test_the_second_app_gets_its_own_package_of_the_same_name(tmp_path: Path) -> None:
    package = "clashing_actions"
    first = app_with(tmp_path / "first", package, "first")
    second = app_with(tmp_path / "second", package, "second")
    try:
        one = import_callable(f"{package}.hello:hello", first)
        two = import_callable(f"{package}.hello:hello", second)
        assert one.__code__.co_filename.startswith(str(first))
        assert two.__code__.co_filename.startswith(str(second))
        # Asked again, the second app's stays: nothing is re-imported needlessly.
        assert import_callable(f"{package}.hello:hello", second) is two
    finally:
        for name in [n for n in sys.modules if n.startswith(package)]:
            del sys.modules[name]
        for folder in (first, second):
            if str(folder) in sys.path:
                sys.path.remove(str(folder))
