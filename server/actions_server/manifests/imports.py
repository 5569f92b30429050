"""Import `dotted.module:function` references from the app's folder.

The app's folder (where config.yaml lives) goes first on `sys.path`, so
`actions.users:create_user` is `actions/users.py` next to the config. Every
failure becomes an ImportProblem whose message says what to fix.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ImportProblem(Exception):
    """A reference that does not import; the message says why."""


def ensure_on_path(root: Path) -> None:
    entry = str(root)
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _claim_package(top: str, root: Path) -> None:
    """Make `top` (a handler module's first name) mean the one in the app's folder.

    Several apps in one process (a test session, `init` tried beside the example)
    often share a package name such as `actions`: the first one imported would
    answer for all, and `actions.hello` of the second would not be found. When the
    folder has its own `top` and the one imported is another's, that one is
    forgotten and the folder goes first on sys.path.
    """
    loaded = sys.modules.get(top)
    if loaded is None or not ((root / top).is_dir() or (root / f"{top}.py").is_file()):
        return
    places = [getattr(loaded, "__file__", None), *(getattr(loaded, "__path__", None) or ())]
    if any(isinstance(p, str) and Path(p).is_relative_to(root) for p in places):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    entry = str(root)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()


def import_callable(ref: str, root: Path, *, must_be_async: bool = True) -> Callable[..., Any]:
    module_name, _, attribute = ref.partition(":")
    ensure_on_path(root)
    _claim_package(module_name.partition(".")[0], root)
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f"{_shown(exc.filename, root)}:{exc.lineno}" if exc.filename else "?"
        raise ImportProblem(
            f"cannot import {module_name!r}: syntax error at {where}: {exc.msg}"
        ) from None
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ImportProblem(
                f"cannot import {module_name!r}: no module named {exc.name!r}"
            ) from None
        raise ImportProblem(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the module raised while running its top level
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise ImportProblem(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc} "
            f"(at {_shown(last.filename, root)}:{last.lineno})"
        ) from None
    function = getattr(module, attribute, None)
    if function is None:
        raise ImportProblem(f"{module_name!r} has no attribute {attribute!r}")
    if not callable(function):
        raise ImportProblem(f"{ref!r} is not a function")
    if must_be_async and not inspect.iscoroutinefunction(function):
        raise ImportProblem(f"{ref!r} must be an async function (write `async def {attribute}`)")
    return function  # type: ignore[no-any-return]


def _shown(filename: str, root: Path) -> str:
    """A file name relative to the app's folder when it is inside it."""
    try:
        return str(Path(filename).relative_to(root))
    except ValueError:
        return filename
