"""Seeds: `actions-server seed` on the example app (plans, a demo org whose admin can
log in at once), and what it does with changed, failing and re-run seeds."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from actions_server.cli import main
from support.apps import REPO, serving, write_app

pytestmark = pytest.mark.integration


def seed(config: Path, dsn: str, *args: str) -> Any:
    before = Path.cwd()
    os.chdir(config.parent)
    try:
        return CliRunner().invoke(
            main, ["seed", str(config), *args], env={"DATABASE_URL": dsn}, catch_exceptions=False
        )
    finally:
        os.chdir(before)


async def test_the_example_app_can_be_tried_at_once(database: str) -> None:
    first = await asyncio.to_thread(seed, REPO / "config.yaml", database)
    assert (first.exit_code, first.stdout) == (0, "seeded 001_plans.sql\nseeded 002_demo_org.py\n")
    again = await asyncio.to_thread(seed, REPO / "config.yaml", database)
    assert (again.exit_code, again.stdout) == (0, "nothing to seed: every seed has run\n")
    async with serving(REPO / "config.yaml", database) as client:
        status, body, _ = await client.post(
            "/auth/login", json={"email": "admin@demo.example", "password": "demo password"}
        )
        assert status == 200, body
        admin = client.as_(body["token"])
        status, me, _ = await admin.get("/auth/me")
        [org] = me["orgs"]
        status, members, _ = await admin.as_(x_org_id=org["id"]).get(f"/orgs/{org['id']}/members")
        assert (status, [(m["email"], m["role"]) for m in members["members"]]) == (
            200,
            [("admin@demo.example", "org:admin"), ("member@demo.example", "org:member")],
        )
        status, features, _ = await admin.as_(x_org_id=org["id"]).get(f"/orgs/{org['id']}/features")
        assert (status, features["plan"], sorted(features["features"])) == (
            200,
            "pro",
            ["projects", "reports"],
        )


def test_fresh_is_refused_off_the_embedded_database_without_yes(database: str) -> None:
    assert seed(REPO / "config.yaml", database).exit_code == 0
    refused = seed(REPO / "config.yaml", database, "--fresh")
    assert refused.exit_code == 1
    assert "which is not the embedded database: seeds that insert would insert twice" in (
        refused.stderr
    )
    rerun = seed(REPO / "config.yaml", database, "--fresh", "--yes")
    assert (rerun.exit_code, rerun.stdout) == (0, "seeded 001_plans.sql\nseeded 002_demo_org.py\n")


SEEDS = {
    "01_rows.sql": "CREATE TABLE IF NOT EXISTS seeded (n int);\nINSERT INTO seeded VALUES (1);\n",
    "02_more.py": (
        "async def seed(ctx):\n"
        '    await ctx.db.table("seeded").insert({"n": 2})\n'
        '    await ctx.kv.set("seeded", True)\n'
    ),
}


def test_changed_failing_and_malformed_seeds(tmp_path: Path, empty_database: str) -> None:
    config, _ = write_app(
        tmp_path, {}, "", config="app: s\nactions: []\ndatabase: {url: '${DATABASE_URL}'}\n"
    )
    folder = tmp_path / "seeds"
    folder.mkdir()
    for name, text in SEEDS.items():
        (folder / name).write_text(text)
    assert seed(config, empty_database).stdout == "seeded 01_rows.sql\nseeded 02_more.py\n"

    (folder / "01_rows.sql").write_text(SEEDS["01_rows.sql"] + "-- edited\n")
    changed = seed(config, empty_database)
    assert changed.exit_code == 1
    assert changed.stderr.endswith(
        "seed 01_rows.sql changed since it ran, and was not run again: put the change in a "
        "new seed, or run every seed again with --fresh\n"
    )

    (folder / "03_bad.sql").write_text("INSERT INTO nowhere VALUES (1);\n")
    failed = seed(config, empty_database)
    assert failed.exit_code == 1
    assert (
        f'error: seed {folder / "03_bad.sql"} failed: UndefinedTable: relation "nowhere" does not exist'
        in failed.stderr
    )
    (folder / "03_bad.sql").unlink()

    (folder / "04_no_function.py").write_text("def seed(ctx):\n    pass\n")
    malformed = seed(config, empty_database)
    assert malformed.exit_code == 1
    assert f"error: seed {folder / '04_no_function.py'} has no `async def seed(ctx)`" in (
        malformed.stderr
    )
