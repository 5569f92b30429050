"""A transactional run's first statement goes out with BEGIN as one text, its values
bound on the client: what must still hold (nothing run twice, slow is not down, the
connection given back once, several statements in one text, every value stored as
it was sent and never read as SQL)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.apps import Client, serving, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MIGRATION = "CREATE SEQUENCE attempts; CREATE TABLE notes (body text NOT NULL);"

# Quotes, a backslash, a comment, a statement of its own, non-ASCII and $$ quoting.
HOSTILE = "it's \\'; DROP TABLE notes; -- $$ \"é\" \U0001f600 E'\\x00'"

MANIFEST = """
module: first
actions:
  - name: first.killsItsConnection
    handler: PKG.handlers:kills_its_connection
    triggers: [{api: POST /kill}]
  - name: first.killsItsConnectionOutsideATransaction
    handler: PKG.handlers:kills_its_connection
    transaction: false
    triggers: [{api: POST /kill-outside}]
  - name: first.slow
    handler: PKG.handlers:slow
    triggers: [{api: GET /slow}]
  - name: first.slowOutsideATransaction
    handler: PKG.handlers:slow
    transaction: false
    triggers: [{api: GET /slow-outside}]
  - name: first.cutShort
    handler: PKG.handlers:slow
    timeout_seconds: 0.3
    triggers: [{api: GET /cut-short}]
  - name: first.bigJson
    handler: PKG.handlers:big_json
    triggers: [{api: GET /big-json}]
  - name: first.note
    handler: PKG.handlers:note
    triggers: [{api: POST /notes}]
  - name: first.binaryParameter
    handler: PKG.handlers:binary_parameter
    triggers: [{api: GET /binary}]
  - name: first.severalWithValues
    handler: PKG.handlers:several_with_values
    triggers: [{api: POST /several-with-values}]
  - name: first.badSyntax
    handler: PKG.handlers:bad_syntax
    triggers: [{api: GET /bad-syntax}]
  - name: first.severalWithValuesCaught
    handler: PKG.handlers:several_with_values_caught
    triggers: [{api: POST /several-with-values-caught}]
  - name: first.settingsOutsideATransaction
    handler: PKG.handlers:settings_after_a_failed_first_statement
    transaction: false
    triggers: [{api: GET /settings-outside}]
  - name: first.float
    handler: PKG.handlers:a_float
    triggers: [{api: GET /float}]
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

async def big_json(input, ctx):
    [row] = await ctx.db.raw("SELECT (%s::jsonb->>'big') AS big", {"big": 2**70})
    return row

async def note(input, ctx):
    [row] = await ctx.db.raw(
        "INSERT INTO notes (body) VALUES (%(body)s) RETURNING body, %(n)s AS n",
        body=input["body"], n=input["n"],
    )
    return row

async def binary_parameter(input, ctx):  # %b: only server-side binding takes it
    [row] = await ctx.db.raw("SELECT %b::int AS n", 5)
    return row

async def several_with_values(input, ctx):
    await ctx.db.raw("INSERT INTO notes (body) VALUES (%s); INSERT INTO notes VALUES ('b')", "a")
    return {}

async def bad_syntax(input, ctx):
    await ctx.db.raw("SELEC %s", input["value"])

async def several_with_values_caught(input, ctx):
    try:
        await ctx.db.raw(
            "INSERT INTO notes (body) VALUES (%s); INSERT INTO notes VALUES ('b')", "a"
        )
    except Exception:
        pass  # and return as if nothing happened
    return {}

async def settings_after_a_failed_first_statement(input, ctx):
    try:
        await ctx.db.raw("SELECT 1 / %s AS x", 0)
    except Exception:
        pass
    [row] = await ctx.db.raw("SELECT current_setting('app.user_id', true) AS user_id")
    return row

async def a_float(input, ctx):
    [row] = await ctx.db.raw("SELECT %s AS x, pg_typeof(%s)::text AS type", 1.5, 1.5)
    return row

async def several_statements(input, ctx):
    rows = await ctx.db.raw("SELECT 1 AS one; SELECT 2 AS two")
    return {"rows": rows}
"""

CONFIG = """
app: first
database: {pool: {acquire_timeout_seconds: 0.5}}
auth: {jwt: {secret: test-secret-that-is-long-enough-0123456789}}
"""


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


@pytest.mark.parametrize("path", ["/kill", "/kill-outside"])
async def test_a_first_statement_that_breaks_its_connection_runs_once(
    client: Client, empty_database: str, path: str
) -> None:
    status, _, _ = await client.post(path)
    assert status >= 500
    assert query(empty_database, "SELECT last_value FROM attempts") == [{"last_value": 1}]


@pytest.mark.parametrize("path", ["/slow", "/slow-outside"])
async def test_a_first_statement_slower_than_the_acquire_timeout_is_waited_for(
    client: Client, path: str
) -> None:
    status, body, _ = await client.get(path)
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


async def test_a_dict_a_handler_stores_is_encoded_as_psycopg_does(client: Client) -> None:
    # Integers beyond 64 bits (orjson refuses them) stay storable as they were.
    status, body, _ = await client.get("/big-json")
    assert (status, body) == (200, {"big": str(2**70)})


async def test_values_of_a_first_statement_are_stored_as_sent_and_never_read_as_sql(
    client: Client, empty_database: str
) -> None:
    status, body, _ = await client.post("/notes", json={"body": HOSTILE, "n": 7})
    assert (status, body) == (200, {"body": HOSTILE, "n": 7})
    assert query(empty_database, "SELECT body FROM notes") == [{"body": HOSTILE}]


async def test_a_value_only_server_side_binding_takes_is_sent_apart(client: Client) -> None:
    assert (await client.get("/binary"))[:2] == (200, {"n": 5})


async def test_several_statements_with_values_are_refused_as_ever_and_roll_back(
    client: Client, empty_database: str
) -> None:
    # Server-side binding refuses several statements in one text with values; the
    # first statement, though sent as text, is held to the same rule.
    status, body, _ = await client.post("/several-with-values")
    assert status == 500, body
    assert query(empty_database, "SELECT body FROM notes") == []


async def test_an_error_in_a_first_statement_is_logged_without_its_values(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        status, _, _ = await client.get("/bad-syntax?value=a-value-no-log-may-show")
    assert status == 500
    assert 'syntax error at or near "SELEC"' in caplog.text
    assert "a-value-no-log-may-show" not in caplog.text


async def test_several_statements_with_values_caught_by_the_handler_still_commit_nothing(
    client: Client, empty_database: str
) -> None:
    status, body, _ = await client.post("/several-with-values-caught")
    assert (status, body["error"]["code"]) == (500, "transaction_aborted")
    assert query(empty_database, "SELECT body FROM notes") == []


async def test_a_failed_first_statement_outside_a_transaction_keeps_the_runs_settings(
    client: Client,
) -> None:
    # Sent in one text with its settings, the failed statement would undo them.
    caller = client.as_(client.token("user-1"))
    assert (await caller.get("/settings-outside"))[:2] == (200, {"user_id": "user-1"})


async def test_a_float_in_a_first_statement_stays_a_double(client: Client) -> None:
    status, body, _ = await client.get("/float")
    assert (status, body) == (200, {"x": 1.5, "type": "double precision"})
