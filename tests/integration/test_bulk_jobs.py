"""`ctx.queue.push_many` and `ctx.event.emit_many`: many jobs and events in the run's
transaction, in a few statements, all or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actions_server.queue.facades import BULK_ROWS
from support.apps import Client, serving, working, write_app
from support.polling import eventually, query

pytestmark = pytest.mark.integration

MANIFEST = """
module: bulk
actions:
  - name: bulk.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: bulk.emit
    handler: PKG.handlers:emit
    triggers: [{api: POST /emit}]
  - name: bulk.work
    handler: PKG.handlers:work
    triggers: [{event: job.work}]
  - name: bulk.onThing
    handler: PKG.handlers:work
    triggers: [{event: thing.happened}]
  - name: bulk.alsoOnThing
    handler: PKG.handlers:work
    triggers: [{event: thing.happened}]
"""

HANDLERS = """
from actions_server import BadRequest

def payloads(input):
    return [None if n == -1 else "oops" if n == -2 else {"n": n} for n in input["ns"]]

async def push(input, ctx):
    ids = await ctx.queue.push_many(input.get("name", "work"), payloads(input),
                                    priority=input.get("priority", 0))
    if input.get("fail"):
        raise BadRequest("changed my mind")
    return {"ids": ids}

async def emit(input, ctx):
    ctx.event.emit_many("thing.happened", payloads(input))
    if input.get("fail"):
        raise BadRequest("changed my mind")
    return {}

async def work(input, ctx):
    await ctx.db.raw("INSERT INTO ran (action, n) VALUES (%s, %s)", ctx.run.action, input.get("n"))
"""

MIGRATION = "CREATE TABLE ran (id serial PRIMARY KEY, action text, n int);"


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"bulk.yaml": MANIFEST},
        HANDLERS,
        migrations={"001.sql": MIGRATION},
        config="app: bulk\nqueue: {poll_interval_seconds: 30}\n",
    )
    async with serving(config, empty_database) as client:
        yield client


def count(dsn: str, sql: str) -> int:
    return int(query(dsn, sql)[0]["n"])


async def test_push_many_queues_one_job_per_payload_and_returns_their_ids_in_order(
    app: Client, empty_database: str
) -> None:
    ns = list(range(BULK_ROWS + 7))  # more than one statement's worth
    status, body, _ = await app.post("/push", json={"ns": ns, "priority": 3})
    assert status == 200, body
    rows = query(
        empty_database,
        "SELECT id, (payload->>'n')::int AS n, priority, parent_run_id FROM actions_server.jobs",
    )
    by_id = {row["id"]: row for row in rows}
    assert [by_id[job_id]["n"] for job_id in body["ids"]] == ns
    assert {(row["priority"], row["parent_run_id"] is not None) for row in rows} == {(3, True)}


async def test_jobs_pushed_in_bulk_run(app: Client, empty_database: str) -> None:
    assert (await app.post("/push", json={"ns": [1, 2, -1]}))[0] == 200
    async with working(app):
        assert await eventually(lambda: count(empty_database, "SELECT count(*) AS n FROM ran") == 3)
    assert sorted((r["n"] is None, r["n"]) for r in query(empty_database, "SELECT n FROM ran")) == [
        (False, 1),
        (False, 2),
        (True, None),
    ]


async def test_emit_many_records_each_event_and_a_delivery_per_subscriber(
    app: Client, empty_database: str
) -> None:
    ns = list(range(BULK_ROWS + 3))
    assert (await app.post("/emit", json={"ns": ns}))[0] == 200
    events = query(
        empty_database,
        "SELECT id, (payload->>'n')::int AS n FROM actions_server.events ORDER BY id",
    )
    assert [e["n"] for e in events] == ns
    deliveries = query(
        empty_database,
        "SELECT j.action, e.payload->>'n' = j.payload->>'n' AS same FROM actions_server.jobs j"
        " JOIN actions_server.events e ON e.id = j.event_id",
    )
    assert len(deliveries) == 2 * len(ns)
    assert {d["action"] for d in deliveries} == {"bulk.onThing", "bulk.alsoOnThing"}
    assert all(d["same"] for d in deliveries)


@pytest.mark.parametrize("path", ["/push", "/emit"])
async def test_a_rolled_back_run_leaves_none_of_its_bulk(
    app: Client, empty_database: str, path: str
) -> None:
    status, _, _ = await app.post(path, json={"ns": [1, 2, 3], "fail": True})
    assert status == 400
    assert count(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == 0
    assert count(empty_database, "SELECT count(*) AS n FROM actions_server.events") == 0


@pytest.mark.parametrize("path", ["/push", "/emit"])
async def test_one_payload_that_is_not_an_object_refuses_the_whole_bulk(
    app: Client, empty_database: str, path: str
) -> None:
    status, body, _ = await app.post(path, json={"ns": [1, -2, 3]})
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "oops" not in str(body)  # the client learns nothing of the handler's bug
    assert count(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == 0
    assert count(empty_database, "SELECT count(*) AS n FROM actions_server.events") == 0


async def test_push_many_for_a_job_nobody_handles_is_an_error(
    app: Client, empty_database: str
) -> None:
    status, _, _ = await app.post("/push", json={"ns": [1], "name": "nobody"})
    assert status == 500
    assert count(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == 0
