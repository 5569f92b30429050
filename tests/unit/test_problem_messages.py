"""Manifest problems that explain themselves: the nearest known key, and a route
conflict at the later file, listed with every other problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.errors import LoadError
from actions_server.sourcemap import did_you_mean
from support.apps import write_app


@pytest.mark.parametrize(
    ("word", "known", "said"),
    [
        ("triger", ["name", "triggers", "guards"], " (did you mean 'triggers'?)"),
        ("retries", ["retry", "triggers"], " (did you mean 'retry'?)"),
        ("colour", ["name", "triggers", "cors"], ""),  # near enough to nothing
        ("x", [], ""),
    ],
)
def test_did_you_mean(word: str, known: list[str], said: str) -> None:
    assert did_you_mean(word, known) == said


def test_route_conflicts_are_at_the_later_file_with_the_other_problems(tmp_path: Path) -> None:
    config, _ = write_app(
        tmp_path,
        {
            "a.yaml": """
                module: a
                actions:
                  - name: a.one
                    handler: PKG.handlers:noop
                    triggers: [{api: GET /x}]
                  - name: a.two
                    handler: PKG.handlers:noop
                    triger: [{api: GET /y}]
            """,
            "b.yaml": """
                module: b
                actions:
                  - name: b.one
                    handler: PKG.handlers:noop
                    triggers: [{api: GET /x}]
            """,
        },
        "async def noop(input, ctx):\n    return {}\n",
        config="app: t\nserver: {prot: 1}\n",
    )
    with pytest.raises(LoadError) as config_problems:
        load_config(config, env={})
    assert [str(p) for p in config_problems.value.problems] == [
        f"{config}:2: server: unknown key 'prot' (did you mean 'port'?)"
    ]
    config.write_text("app: t\n")
    with pytest.raises(LoadError) as app_problems:
        load_app(load_config(config, env={}))
    assert [str(p) for p in app_problems.value.problems] == [
        "actions/a.yaml:9: actions[1]: unknown key 'triger' (did you mean 'triggers'?)",
        "actions/b.yaml:6: GET /x is already served by 'a.one' (actions/a.yaml:4)",
    ]
