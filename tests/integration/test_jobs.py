"""Jobs and events on a real PostgreSQL, run by an in-process worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from actions_server.maintenance import run_maintenance
from actions_server.queue import store
from support.apps import Client, serving, working, write_app
from support.polling import connect, eventually, query
from support.tokens import SECRET, claims, hs256

pytestmark = pytest.mark.integration

MIGRATION = """
CREATE TABLE ran (
    id serial PRIMARY KEY, job text, n int, attempt int, job_id text, trigger text,
    trace_id text, user_id text, at timestamptz DEFAULT clock_timestamp()
);
"""

MANIFEST = """
module: q
actions:
  - name: q.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: q.pushThenFail
    handler: PKG.handlers:push_then_fail
    triggers: [{api: POST /push-then-fail}]
  - name: q.emit
    handler: PKG.handlers:emit
    triggers: [{api: POST /emit}]
  - name: q.work
    handler: PKG.handlers:work
    triggers: [{event: job.work}]
  - name: q.noDb
    handler: PKG.handlers:no_db
    triggers: [{event: job.nodb}]
  - name: q.flaky
    handler: PKG.handlers:flaky
    retry: {attempts: 4, backoff: fixed, base_seconds: 0.05}
    triggers: [{event: job.flaky}]
  - name: q.broken
    handler: PKG.handlers:broken
    retry: {attempts: 2, backoff: fixed, base_seconds: 0.05}
    triggers: [{event: job.broken}]
  - name: q.slow
    handler: PKG.handlers:slow
    timeout_seconds: 0.3
    retry: {attempts: 1}
    triggers: [{event: job.slow}]
  - name: q.emitAroundSavepoint
    handler: PKG.handlers:emit_around_savepoint
    triggers: [{api: POST /emit-around-savepoint}]
  - name: q.typed
    handler: PKG.handlers:work
    input: {type: object, properties: {n: {type: integer}}, required: [n]}
    retry: {attempts: 3, backoff: fixed, base_seconds: 0.05}
    triggers: [{event: job.typed}]
  - name: q.garbled
    handler: PKG.handlers:garbled
    retry: {attempts: 1}
    triggers: [{event: job.garbled}]
  - name: q.sleepy
    handler: PKG.handlers:sleepy
    triggers: [{event: job.sleepy}]
  - name: q.onThing
    handler: PKG.handlers:on_thing
    triggers: [{event: thing.happened}]
  - name: q.alsoOnThing
    handler: PKG.handlers:on_thing
    triggers: [{event: thing.happened}]
"""

HANDLERS = """
import asyncio
from actions_server import BadRequest

async def record(ctx, job, n):
    await ctx.db.table("ran").insert({
        "job": job, "n": n, "attempt": ctx.run.attempt, "job_id": ctx.run.job_id,
        "trigger": ctx.run.trigger, "trace_id": ctx.run.trace_id, "user_id": ctx.auth.user_id,
    })

async def push(input, ctx):
    options = {k: input[k] for k in ("delay", "priority", "unique_key") if k in input}
    job_id = await ctx.queue.push(input.get("name", "work"), {"n": input.get("n", 0)}, **options)
    return {"job_id": job_id, "trace_id": ctx.run.trace_id}

async def push_then_fail(input, ctx):
    await ctx.queue.push("work", {"n": 1})
    ctx.event.emit("thing.happened", {"n": 1})
    raise BadRequest("changed my mind")

async def emit(input, ctx):
    emitted = ctx.event.emit(input.get("name", "thing.happened"), {"n": input.get("n", 0)})
    if input.get("await"):
        await emitted
    return {"ok": True}

async def work(input, ctx):
    await record(ctx, "work", input["n"])

async def no_db(input, ctx):
    return None

async def flaky(input, ctx):
    await record(ctx, "flaky", input["n"])
    if ctx.run.attempt < 3:
        raise RuntimeError(f"attempt {ctx.run.attempt} fails")

async def broken(input, ctx):
    raise RuntimeError("always broken")

async def slow(input, ctx):
    await asyncio.sleep(3600)  # only the action's timeout_seconds can end it

async def emit_around_savepoint(input, ctx):
    ctx.event.emit("kept.before")
    try:
        async with ctx.db.transaction():
            await ctx.db.raw("SELECT 1")
            ctx.event.emit("dropped.inside")
            raise RuntimeError("undo the savepoint")
    except RuntimeError:
        pass
    async with ctx.db.transaction():
        ctx.event.emit("kept.inside")
    ctx.event.emit("kept.after")

async def garbled(input, ctx):
    raise RuntimeError("NUL \\x00 and a lone surrogate \\ud800")

async def sleepy(input, ctx):
    await ctx.db.raw("SELECT 1")  # the run's transaction begins here
    await asyncio.sleep(0.3)

async def on_thing(input, ctx):
    await record(ctx, ctx.run.action, input["n"])
"""

CONFIG = f"app: q\nqueue: {{poll_interval_seconds: 30}}\nauth: {{jwt: {{secret: {SECRET}}}}}\n"


def unfinished_jobs(dsn: str) -> int:
    rows = query(
        dsn,
        "SELECT count(*) AS n FROM actions_server.jobs WHERE status IN ('queued', 'running')",
    )
    return int(rows[0]["n"])


def listening(dsn: str) -> bool:
    """Whether a worker's LISTEN connection is up (it runs nothing else, so it shows idle)."""
    return bool(
        query(
            dsn,
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'idle' AND query LIKE 'LISTEN %'",
        )
    )


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path, {"q.yaml": MANIFEST}, HANDLERS, migrations={"001.sql": MIGRATION}, config=CONFIG
    )
    async with serving(config, empty_database) as client:
        yield client


async def test_a_rolled_back_run_leaves_no_job_and_no_event(
    app: Client, empty_database: str
) -> None:
    status, body, _ = await app.post("/push-then-fail")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert query(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == [{"n": 0}]
    assert query(empty_database, "SELECT count(*) AS n FROM actions_server.events") == [{"n": 0}]


async def test_a_pushed_job_runs_with_the_pushers_principal_and_trace(
    app: Client, empty_database: str
) -> None:
    user = app.as_(hs256(claims(sub="user-42")))
    status, body, _ = await user.post("/push", json={"n": 7})
    assert status == 200
    async with working(app):
        rows = await eventually(lambda: query(empty_database, "SELECT * FROM ran"))
    [row] = rows
    assert (row["job"], row["n"], row["attempt"], row["trigger"]) == ("work", 7, 1, "job")
    assert row["job_id"] == str(body["job_id"])
    assert row["trace_id"] == body["trace_id"]
    assert row["user_id"] == "user-42"
    [job] = query(empty_database, "SELECT status, attempts, parent_run_id FROM actions_server.jobs")
    assert (job["status"], job["attempts"]) == ("done", 1)
    assert job["parent_run_id"]


async def test_an_event_reaches_every_subscriber_once_and_is_recorded(
    app: Client, empty_database: str
) -> None:
    assert (await app.post("/emit", json={"n": 3, "await": True}))[0] == 200
    assert (await app.post("/emit", json={"name": "nobody.listens"}))[0] == 200
    async with working(app):
        # Every delivery finished (none queued or running): nothing more can run.
        assert await eventually(lambda: unfinished_jobs(empty_database) == 0)
    rows = query(empty_database, "SELECT * FROM ran")
    assert sorted((r["job"], r["trigger"]) for r in rows) == [
        ("q.alsoOnThing", "event"),
        ("q.onThing", "event"),
    ]
    assert len(query(empty_database, "SELECT * FROM ran")) == 2
    events = query(empty_database, "SELECT name FROM actions_server.events ORDER BY id")
    assert [e["name"] for e in events] == ["thing.happened", "nobody.listens"]


async def test_pushing_a_job_nobody_handles_is_an_error(app: Client, empty_database: str) -> None:
    status, body, _ = await app.post("/push", json={"name": "nobody"})
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert query(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == [{"n": 0}]


async def test_a_job_without_database_work_is_acknowledged_in_a_batch(
    app: Client, empty_database: str
) -> None:
    for _ in range(5):
        await app.post("/push", json={"name": "nodb"})
    async with working(app):
        done = await eventually(
            lambda: (
                query(
                    empty_database,
                    "SELECT count(*) AS n FROM actions_server.jobs WHERE status = 'done'",
                )
                == [{"n": 5}]
            )
        )
    assert done


async def test_retries_then_success(app: Client, empty_database: str) -> None:
    await app.post("/push", json={"name": "flaky", "n": 1})
    async with working(app):
        ok = await eventually(
            lambda: (
                query(empty_database, "SELECT status FROM actions_server.jobs")
                == [{"status": "done"}]
            )
        )
    assert ok
    [job] = query(empty_database, "SELECT attempts, last_error FROM actions_server.jobs")
    assert job["attempts"] == 3
    # Only the successful attempt's write survived; the failed ones rolled back.
    assert [(r["attempt"]) for r in query(empty_database, "SELECT attempt FROM ran")] == [3]


async def test_a_job_that_always_fails_ends_dead_with_its_error_and_can_be_retried(
    app: Client, empty_database: str
) -> None:
    await app.post("/push", json={"name": "broken"})
    async with working(app):
        dead = await eventually(
            lambda: query(empty_database, "SELECT * FROM actions_server.jobs WHERE status = 'dead'")
        )
    [job] = dead
    assert job["attempts"] == 2
    assert job["last_error"]["code"] == "internal_error"
    assert "always broken" in job["last_error"]["traceback"]
    from actions_server.queue import store

    async with await connect(empty_database) as conn:
        assert (await store.retry(conn, job["id"])).queued == [job["id"]]
        assert await store.status_of(conn, job["id"]) == "queued"


async def test_timeout_cancels_the_handler_and_counts_as_a_failure(
    app: Client, empty_database: str
) -> None:
    await app.post("/push", json={"name": "slow"})  # it would sleep an hour
    async with working(app):
        dead = await eventually(
            lambda: query(
                empty_database, "SELECT last_error FROM actions_server.jobs WHERE status = 'dead'"
            )
        )
    assert dead[0]["last_error"]["code"] == "timeout"


async def test_unique_key_holds_one_unfinished_job(app: Client, empty_database: str) -> None:
    first = (await app.post("/push", json={"unique_key": "k1", "n": 1}))[1]["job_id"]
    again = (await app.post("/push", json={"unique_key": "k1", "n": 2}))[1]["job_id"]
    assert again == first
    async with working(app):
        await eventually(lambda: query(empty_database, "SELECT * FROM ran"))
    later = (await app.post("/push", json={"unique_key": "k1", "n": 3}))[1]["job_id"]
    assert later != first
    assert query(empty_database, "SELECT count(*) AS n FROM actions_server.jobs") == [{"n": 2}]


async def test_delay_holds_a_job_back(app: Client, empty_database: str) -> None:
    await app.post("/push", json={"n": 1, "delay": 1.0})
    # The worker sleeps until the job is due, not until its next poll (an hour away).
    async with working(app, poll_interval_seconds=3600):
        rows = await eventually(lambda: query(empty_database, "SELECT * FROM ran"), seconds=30)
    [job] = query(empty_database, "SELECT created_at, run_at FROM actions_server.jobs")
    assert (job["run_at"] - job["created_at"]).total_seconds() == 1.0
    # Both times are PostgreSQL's: the handler ran once the job was due, not before.
    assert rows[0]["at"] >= job["run_at"]


async def test_priority_orders_the_claims(app: Client, empty_database: str) -> None:
    for n, priority in ((1, 0), (2, 5), (3, -1), (4, 5)):
        await app.post("/push", json={"n": n, "priority": priority})
    async with working(app, concurrency=1):
        await eventually(lambda: len(query(empty_database, "SELECT * FROM ran")) == 4)
    assert [r["n"] for r in query(empty_database, "SELECT n FROM ran ORDER BY id")] == [2, 4, 1, 3]


async def test_notify_wakes_the_worker_without_waiting_for_the_poll(
    app: Client, empty_database: str
) -> None:
    async with working(app, poll_interval_seconds=3600):  # only a NOTIFY can wake it in time
        assert await eventually(lambda: listening(empty_database))
        for n in range(5):
            await app.post("/push", json={"n": n})
            ran = await eventually(
                lambda n=n: query(empty_database, "SELECT 1 FROM ran WHERE n = %s", n), seconds=30
            )
            assert ran, f"job {n} waited for the poll: no NOTIFY woke the worker"


async def test_maintenance_prunes_old_finished_jobs_but_keeps_ticks(
    app: Client, empty_database: str
) -> None:
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO actions_server.jobs (kind, name, action, payload, status, max_attempts, finished_at)"
            " VALUES ('job', 'old', 'q.work', '{}', 'done', 1, now() - interval '8 days'),"
            "        ('job', 'new', 'q.work', '{}', 'done', 1, now() - interval '1 day'),"
            "        ('job', 'dead', 'q.work', '{}', 'dead', 1, now() - interval '8 days')"
        )
        conn.execute(
            "INSERT INTO actions_server.cron_ticks (action, fire_time) VALUES ('x', now() - interval '20 days')"
        )
    async with await connect(empty_database) as conn:
        pruned = await run_maintenance(conn, app.runtime.config)
    assert pruned["jobs"] == 1
    assert [
        r["name"] for r in query(empty_database, "SELECT name FROM actions_server.jobs ORDER BY id")
    ] == ["new", "dead"]
    assert query(empty_database, "SELECT count(*) AS n FROM actions_server.cron_ticks") == [
        {"n": 1}
    ]


async def test_events_emitted_in_a_rolled_back_savepoint_are_dropped_with_it(
    app: Client, empty_database: str
) -> None:
    assert (await app.post("/emit-around-savepoint"))[0] == 204
    events = query(empty_database, "SELECT name FROM actions_server.events ORDER BY id")
    assert [e["name"] for e in events] == ["kept.before", "kept.inside", "kept.after"]


async def test_a_payload_its_action_rejects_is_dead_at_once(
    app: Client, empty_database: str
) -> None:
    await app.post("/push", json={"name": "typed", "n": "not a number"})
    async with working(app):
        dead = await eventually(
            lambda: query(empty_database, "SELECT * FROM actions_server.jobs WHERE status = 'dead'")
        )
    [job] = dead
    assert (job["attempts"], job["last_error"]["code"]) == (1, "validation_failed")


async def test_an_error_text_postgres_cannot_store_is_cleaned_not_lost(
    app: Client, empty_database: str
) -> None:
    await app.post("/push", json={"name": "garbled"})
    async with working(app):
        dead = await eventually(
            lambda: query(empty_database, "SELECT * FROM actions_server.jobs WHERE status = 'dead'")
        )
    [job] = dead
    assert "NUL \ufffd and a lone surrogate ?" in job["last_error"]["traceback"]


async def test_a_job_for_an_action_this_worker_lacks_waits_without_using_attempts(
    app: Client, empty_database: str
) -> None:
    [job] = query(
        empty_database,
        "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts)"
        " VALUES ('job', 'gone', 'q.gone', '{}', 1) RETURNING id",
    )
    async with working(app):
        postponed = await eventually(
            lambda: query(
                empty_database,
                "SELECT * FROM actions_server.jobs WHERE last_error IS NOT NULL AND id = %s",
                job["id"],
            )
        )
    [row] = postponed
    assert (row["status"], row["attempts"]) == ("queued", 0)
    assert row["last_error"]["code"] == "unknown_action"
    [late] = query(
        empty_database,
        "SELECT run_at > now() + interval '30 seconds' AS late FROM actions_server.jobs",
    )
    assert late["late"]


async def test_retry_leaves_a_dead_job_whose_unique_key_is_held(
    app: Client, empty_database: str
) -> None:
    from actions_server.queue import store

    rows = query(
        empty_database,
        "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts, status,"
        " unique_key) VALUES ('job', 'work', 'q.work', '{}', 1, 'dead', 'held'),"
        " ('job', 'work', 'q.work', '{}', 1, 'queued', 'held'),"
        " ('job', 'work', 'q.work', '{}', 1, 'dead', 'twice'),"
        " ('job', 'work', 'q.work', '{}', 1, 'dead', 'twice') RETURNING id",
    )
    dead_held, holder, older_twice, newer_twice = (r["id"] for r in rows)
    async with await connect(empty_database) as conn:
        retried = await store.retry(conn, None)
        assert retried.queued == [newer_twice]
        assert retried.held == {dead_held: holder, older_twice: newer_twice}
        assert (await store.retry(conn, dead_held)).queued == []


async def test_a_stale_claim_cannot_finish_the_jobs_next_claim(
    app: Client, empty_database: str
) -> None:
    from actions_server.queue import store

    query(
        empty_database,
        "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts)"
        " VALUES ('job', 'work', 'q.work', '{}', 3) RETURNING id",
    )
    async with await connect(empty_database) as conn:
        [first] = await store.claim(conn, "same-worker", 10, 30)
        await conn.execute("UPDATE actions_server.jobs SET locked_until = now() - interval '1s'")
        assert await store.reap_expired(conn) == [first["id"]]
        [second] = await store.claim(conn, "same-worker", 10, 30)
        stale = store.Claim(first["id"], first["claim"])
        current = store.Claim(second["id"], second["claim"])
        assert await store.complete(conn, [stale]) == set()
        await store.release(conn, [stale])
        assert await store.status_of(conn, first["id"]) == "running"
        assert await store.complete(conn, [current]) == {first["id"]}


async def test_a_jobs_finish_time_is_when_its_run_ended_not_when_its_transaction_began(
    app: Client, empty_database: str
) -> None:
    assert (await app.post("/push", json={"name": "sleepy"}))[0] == 200
    async with working(app):
        assert await eventually(lambda: unfinished_jobs(empty_database) == 0)
    [job] = query(
        empty_database,
        "SELECT extract(epoch FROM finished_at - started_at) AS seconds FROM actions_server.jobs",
    )
    assert job["seconds"] >= 0.3


async def test_acknowledgements_on_their_way_when_the_worker_stops_are_kept(app: Client) -> None:
    claim = store.Claim(999_999, uuid.uuid4())
    async with working(app) as worker:
        database = app.runtime.database
        # Every control connection busy: the flush waits for one, and is stopped there.
        async with database.control(), database.control(), database.control():
            worker._acks._done.append(claim)
            flushing = asyncio.create_task(worker._acks.flush())
            await asyncio.sleep(0.2)
            flushing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await flushing
        assert claim in worker._acks._done  # the worker's last flush writes it


async def test_a_claimed_payload_keeps_every_integer_a_push_can_store(
    app: Client, empty_database: str
) -> None:
    # Claims read payloads with orjson: exact for every integer orjson can write (a
    # push refuses larger ones), and the claim hands over the same values.
    payload = {"top": 2**64 - 1, "bottom": -(2**63), "ratio": 0.1, "text": "é\u2028", "n": None}
    async with await connect(empty_database) as conn:
        await store.enqueue(
            conn,
            [store.NewJob(kind="job", name="w", action="q.work", payload=payload, max_attempts=3)],
        )
        [claimed] = await store.claim(conn, "a-worker", 10, 30)
    assert claimed["payload"] == payload
    assert type(claimed["payload"]["top"]) is int
