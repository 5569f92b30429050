"""One transaction per run: everything commits together or nothing does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from support.apps import Client, serving, write_app

pytestmark = pytest.mark.integration

MIGRATION = """
CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL UNIQUE);
"""

MANIFEST = """
module: notes
prefix: /notes
actions:
  - name: notes.addTwoThenFail
    handler: PKG.handlers:add_two_then_fail
    triggers: [{api: POST /fail}]
  - name: notes.addThenBadOutput
    handler: PKG.handlers:add_then_bad_output
    output: {type: object, required: [id], properties: {id: {type: integer}}}
    triggers: [{api: POST /bad-output}]
  - name: notes.addTwoNoTransaction
    handler: PKG.handlers:add_two_then_fail
    transaction: false
    triggers: [{api: POST /autocommit}]
  - name: notes.savepoint
    handler: PKG.handlers:savepoint
    triggers: [{api: POST /savepoint}]
  - name: notes.noDatabase
    handler: PKG.handlers:no_database
    triggers: [{api: GET /pure}]
  - name: notes.conflict
    handler: PKG.handlers:conflict
    triggers: [{api: POST /conflict}]
"""

HANDLERS = """
async def add_two_then_fail(input, ctx):
    await ctx.db.table("notes").insert({"body": "one"})
    await ctx.db.raw("INSERT INTO notes (body) VALUES (%s)", "two")
    raise RuntimeError("after two inserts")

async def add_then_bad_output(input, ctx):
    [row] = await ctx.db.table("notes").insert({"body": "kept?"})
    return {"id": str(row["id"])}

async def savepoint(input, ctx):
    await ctx.db.table("notes").insert({"body": "outer"})
    try:
        async with ctx.db.transaction():
            await ctx.db.table("notes").insert({"body": "inner"})
            await ctx.db.table("notes").insert({"body": "outer"})  # unique violation
    except Exception:
        pass
    await ctx.db.table("notes").insert({"body": "after"})
    return {"ok": True}

async def no_database(input, ctx):
    return {"db_used": ctx.db.used}

async def conflict(input, ctx):
    await ctx.db.table("notes").insert({"body": "same"})
    await ctx.db.table("notes").insert({"body": "same"})
"""


@pytest.fixture
async def client(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path, {"notes.yaml": MANIFEST}, HANDLERS, migrations={"001_notes.sql": MIGRATION}
    )
    async with serving(config, empty_database) as c:
        yield c


def bodies(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id")]


async def test_handler_error_rolls_back_every_write(client: Client, empty_database: str) -> None:
    status, _, _ = await client.post("/notes/fail")
    assert status == 500
    assert bodies(empty_database) == []


async def test_invalid_output_rolls_back(client: Client, empty_database: str) -> None:
    status, body, _ = await client.post("/notes/bad-output")
    assert (status, body["error"]["code"]) == (500, "invalid_output")
    assert bodies(empty_database) == []


async def test_transaction_false_keeps_each_statement(client: Client, empty_database: str) -> None:
    status, _, _ = await client.post("/notes/autocommit")
    assert status == 500
    assert bodies(empty_database) == ["one", "two"]


async def test_savepoint_rolls_back_alone(client: Client, empty_database: str) -> None:
    status, body, _ = await client.post("/notes/savepoint")
    assert (status, body) == (200, {"ok": True})
    assert bodies(empty_database) == ["outer", "after"]


async def test_action_without_database_work_takes_no_connection(client: Client) -> None:
    stats_before = client.runtime.database.pool.get_stats().get("requests_num", 0)
    status, body, _ = await client.get("/notes/pure")
    assert (status, body) == (200, {"db_used": False})
    assert client.runtime.database.pool.get_stats().get("requests_num", 0) == stats_before


async def test_unique_violation_is_409_and_rolled_back(client: Client, empty_database: str) -> None:
    status, body, _ = await client.post("/notes/conflict")
    assert status == 409
    assert body["error"]["details"] == [{"path": "/body", "message": "already exists"}]
    assert bodies(empty_database) == []
