"""A transactional run's first statement goes out with BEGIN in one pipeline: what
must still hold (nothing run twice, slow is not down, the connection given back
once, several statements in one text)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MIGRATION = "CREATE SEQUENCE attempts;"

MANIFEST = """
module: first
actions:
  - name: first.killsItsConnection
    handler: PKG.handlers:kills_its_connection
    triggers: [{api: POST /kill}]
  - name: first.slow
    handler: PKG.handlers:slow
    triggers: [{api: GET /slow}]
  - name: first.cutShort
    handler: PKG.handlers:slow
    timeout_seconds: 0.3
    triggers: [{api: GET /cut-short}]
  - name: first.severalStatements
    handler: PKG.handlers:several_statements
    triggers: [{api: GET /several}]
"""

HANDLERS = """
async def kills_its_connection(input, ctx):
    await ctx.db.raw(
        "SELECT nextval('attempts'), pg_terminate_backend(pg_backend_pid()) WHERE %s", True
    )

async def slow(input, ctx):
    [row] = await ctx.db.raw("SELECT true AS slept FROM pg_sleep(%s)", 1.5)
    return row

async def several_statements(input, ctx):
    rows = await ctx.db.raw("SELECT 1 AS one; SELECT 2 AS two")
    return {"rows": rows}
"""

CONFIG = "app: first\ndatabase: {pool: {acquire_timeout_seconds: 0.5}}\n"


@pytest.fixture
async def client(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"first.yaml": MANIFEST},
        HANDLERS,
        migrations={"001.sql": MIGRATION},
        config=CONFIG,
    )
    async with serving(config, empty_database) as c:
        yield c


async def test_a_first_statement_that_breaks_its_connection_runs_once(
    client: Client, empty_database: str
) -> None:
    status, _, _ = await client.post("/kill")
    assert status >= 500
    assert query(empty_database, "SELECT last_value FROM attempts") == [{"last_value": 1}]


async def test_a_first_statement_slower_than_the_acquire_timeout_is_waited_for(
    client: Client,
) -> None:
    status, body, _ = await client.get("/slow")
    assert (status, body) == (200, {"slept": True})
    assert not client.runtime.database.breaker.is_open


async def test_a_run_cut_short_in_its_first_statement_gives_its_connection_back_once(
    client: Client,
) -> None:
    status, body, _ = await client.get("/cut-short")
    assert (status, body["error"]["code"]) == (504, "timeout")
    database = client.runtime.database
    # The abandoned statement ends (pg_sleep) and its connection goes back: the count
    # of connections in use is 0 again, not -1 (a second give-back would make it so).
    await eventually(lambda: sum(database._in_use.values()) == 0, seconds=30)
    assert not database._abandoned
    assert sum(database._in_use.values()) == 0


async def test_a_first_text_of_several_statements_runs(client: Client) -> None:
    status, body, _ = await client.get("/several")
    assert status == 200, body
