"""The app's version, as OpenAPI's `info.version` and the MCP server's version say it.

In order: `openapi.version` (the API's own, when it differs from the app's), the
config's `version`, `[project].version` of the `pyproject.toml` beside the
config, and actions-server's own version. Never the `0.0.0` that says nothing.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from .model import Config


def app_version(config: Config) -> str:
    given = config.sections.get("openapi", {}).get("version") or config.version
    if given:
        return str(given)
    pyproject = config.root / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        project = {}
    if isinstance(project.get("version"), str) and project["version"]:
        return str(project["version"])
    try:
        return version("actions-server")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"
