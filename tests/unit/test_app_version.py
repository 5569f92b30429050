"""The app's version (OpenAPI info.version, the MCP server's version): never 0.0.0."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from actions_server.config import app_version, load_config


def version_of(folder: Path, config: str, pyproject: str | None = None) -> str:
    (folder / "config.yaml").write_text(config)
    if pyproject is not None:
        (folder / "pyproject.toml").write_text(pyproject)
    return app_version(load_config(folder / "config.yaml", env={}))


def test_the_first_of_openapi_version_version_pyproject_and_the_package(tmp_path: Path) -> None:
    project = '[project]\nname = "x"\nversion = "3.0.0"\n'
    assert version_of(tmp_path, "app: x\n") == version("actions-server")
    assert version_of(tmp_path, "app: x\n", project) == "3.0.0"
    assert version_of(tmp_path, 'app: x\nversion: "2.1.0"\n') == "2.1.0"
    both = 'app: x\nversion: "2.1.0"\nopenapi: {version: "9.0.0"}\n'
    assert version_of(tmp_path, both) == "9.0.0"


def test_a_pyproject_that_cannot_be_read_is_passed_over(tmp_path: Path) -> None:
    assert version_of(tmp_path, "app: x\n", "not toml [") == version("actions-server")
    assert version_of(tmp_path, "app: x\n", "[project]\nversion = 3\n") == version("actions-server")
