"""Every run is recorded with its log lines, redacted, off the request path."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from actions_server.cli import main
from actions_server.config import RunsConfig
from actions_server.maintenance import run_maintenance
from actions_server.redaction import Redactor
from actions_server.runs.lines import RunEntry
from actions_server.runs.recorder import RunRecorder
from actions_server.runs.store import first_id_at
from actions_server.scope import RunInfo
from support.apps import Client, serving, working, write_app
from support.polling import eventually, query
from support.processes import Served, free_port, http
from support.tokens import SECRET, claims, hs256

pytestmark = pytest.mark.integration

MANIFEST = """
module: r
actions:
  - name: r.echo
    handler: PKG.handlers:echo
    input:
      type: object
      required: [n]
      properties: {n: {type: integer}, profile: {type: object}}
    triggers: [{api: POST /echo}]
  - name: r.crash
    handler: PKG.handlers:crash
    triggers: [{api: POST /crash}]
  - name: r.push
    handler: PKG.handlers:push
    triggers: [{api: POST /push}]
  - name: r.work
    handler: PKG.handlers:work
    retry: {attempts: 1}
    triggers: [{event: job.work}]
  - name: r.tick
    handler: PKG.handlers:work
    run_as: system
    triggers: [{cron: "0 0 1 1 *"}]
"""

HANDLERS = """
async def echo(input, ctx):
    ctx.logger.info("echoing", n=input["n"], credentials={"api_key": "k-123", "user": "ann"})
    return {"n": input["n"], "token": "t-456", "deep": [{"Client-Secret": "s-789"}]}

async def crash(input, ctx):
    raise RuntimeError("boom")

async def push(input, ctx):
    return {"job": await ctx.queue.push("work", {"password": "p-000"})}

async def work(input, ctx):
    ctx.logger.warning("working")
"""

CONFIG = f"""
app: r
auth: {{jwt: {{secret: {SECRET}}}}}
runs: {{flush_interval_seconds: 0.05, sample_rate: 1}}  # every run stored, to look at
"""


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(tmp_path, {"r.yaml": MANIFEST}, HANDLERS, config=CONFIG)
    async with serving(config, empty_database) as client:
        yield client


def runs(dsn: str, action: str) -> list[dict[str, object]]:
    return query(dsn, "SELECT * FROM actions_server.runs WHERE action = %s ORDER BY id", action)


async def test_an_http_run_is_recorded_with_secrets_redacted_at_any_depth(
    app: Client, empty_database: str
) -> None:
    user = app.as_(hs256(claims(sub="user-7")))
    body = {"n": 1, "profile": {"password": "hunter2", "keys": [{"x-api-key": "abc"}]}}
    status, _, response = await user.post("/echo", json=body)
    assert status == 200
    [run] = await eventually(lambda: runs(empty_database, "r.echo"))
    assert (run["trigger"], run["status"], run["user_id"]) == ("api", "ok", "user-7")
    assert run["trace_id"] == response.headers["x-trace-id"]
    assert run["input"] == {
        "n": 1,
        "profile": {"password": "[redacted]", "keys": [{"x-api-key": "[redacted]"}]},
    }
    assert run["output"] == {
        "n": 1,
        "token": "[redacted]",
        "deep": [{"Client-Secret": "[redacted]"}],
    }
    assert run["duration_ms"] > 0
    [line] = await eventually(
        lambda: query(
            empty_database, "SELECT * FROM actions_server.run_logs WHERE run_id = %s", run["id"]
        )
    )
    assert (line["level"], line["message"]) == ("info", "echoing")
    assert line["fields"] == {"n": 1, "credentials": {"api_key": "[redacted]", "user": "ann"}}


async def test_rejected_and_failed_runs_keep_their_error(app: Client, empty_database: str) -> None:
    assert (await app.post("/echo", json={"n": "one"}))[0] == 400
    assert (await app.post("/crash"))[0] == 500
    [rejected] = await eventually(lambda: runs(empty_database, "r.echo"))
    assert rejected["status"] == "rejected"
    assert (rejected["error"]["code"], rejected["error"]["status"]) == ("validation_failed", 400)
    assert "traceback" not in rejected["error"]
    [failed] = await eventually(lambda: runs(empty_database, "r.crash"))
    assert failed["status"] == "error"
    assert failed["output"] is None
    assert "RuntimeError: boom" in failed["error"]["traceback"]


async def test_job_and_cron_runs_name_their_trigger_and_parent(
    app: Client, empty_database: str
) -> None:
    status, body, _ = await app.post("/push")
    assert status == 200
    query(
        empty_database,
        "INSERT INTO actions_server.jobs (kind, name, action, payload, max_attempts)"
        " VALUES ('cron', 'r.tick', 'r.tick', '{}', 1)",
    )
    async with working(app):
        [job_run] = await eventually(lambda: runs(empty_database, "r.work"))
        [cron_run] = await eventually(lambda: runs(empty_database, "r.tick"))
    [push_run] = runs(empty_database, "r.push")
    assert (job_run["trigger"], job_run["job_id"], job_run["attempt"]) == ("job", body["job"], 1)
    assert job_run["parent_id"] == push_run["id"]
    assert job_run["trace_id"] == push_run["trace_id"]
    assert job_run["input"] == {"password": "[redacted]"}
    assert (cron_run["trigger"], cron_run["parent_id"]) == ("cron", None)


def test_a_cli_call_is_recorded(tmp_path: Path, empty_database: str) -> None:
    with_url = CONFIG + "database: {url: '${DATABASE_URL}'}\n"
    config, _ = write_app(tmp_path, {"r.yaml": MANIFEST}, HANDLERS, config=with_url)
    result = CliRunner().invoke(
        main,
        ["call", str(config), "r.echo", "--input", '{"n": 5}'],
        env={"DATABASE_URL": empty_database},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [run] = runs(empty_database, "r.echo")
    assert (run["trigger"], run["output"]["n"]) == ("cli", 5)


def test_serve_logs_json_lines_to_stdout(tmp_path: Path, empty_database: str) -> None:
    json_logs = CONFIG + "logging: {format: json}\ndatabase: {url: '${DATABASE_URL}'}\n"
    config, _ = write_app(tmp_path, {"r.yaml": MANIFEST}, HANDLERS, config=json_logs)
    port = free_port()
    served = Served(
        ["serve", str(config), "--port", str(port), "--no-worker"],
        tmp_path,
        {**os.environ, "DATABASE_URL": empty_database},
        tmp_path / "stdout.log",
        stderr_log=tmp_path / "stderr.log",
    )
    try:
        served.wait_until_healthy(f"http://127.0.0.1:{port}")
        assert http("POST", f"http://127.0.0.1:{port}/echo", {"n": 3})[0] == 200
    finally:
        assert served.stop() == 0
    lines = [json.loads(line) for line in served.output().splitlines()]
    [echoing] = [line for line in lines if line["message"] == "echoing"]
    assert echoing["action"] == "r.echo"
    assert echoing["level"] == "info"
    assert len(echoing["trace_id"]) == 32
    assert echoing["run_id"] == str(runs(empty_database, "r.echo")[0]["id"])
    assert echoing["fields"] == {"n": 3, "credentials": {"api_key": "[redacted]", "user": "ann"}}
    assert "echoing" not in (tmp_path / "stderr.log").read_text()


async def test_what_is_buffered_is_flushed_on_shutdown(tmp_path: Path, empty_database: str) -> None:
    slow = CONFIG.replace("flush_interval_seconds: 0.05", "flush_interval_seconds: 10")
    config, _ = write_app(tmp_path, {"r.yaml": MANIFEST}, HANDLERS, config=slow)
    async with serving(config, empty_database) as client:
        for n in range(3):
            assert (await client.post("/echo", json={"n": n}))[0] == 200
        assert runs(empty_database, "r.echo") == []  # still in the buffer
    assert [r["output"]["n"] for r in runs(empty_database, "r.echo")] == [0, 1, 2]


async def test_a_database_that_is_down_drops_the_oldest_runs_and_counts_them() -> None:
    config = dataclasses.replace(RunsConfig(), buffer_size=100, batch_size=30)
    # Nothing listens on port 1: every flush fails at once.
    recorder = RunRecorder("postgresql://postgres@127.0.0.1:1/none", config, Redactor())
    for n in range(150):
        run = RunInfo(f"00000000-0000-7000-8000-{n:012d}", "trace", "a", "api")
        recorder.add_run(RunEntry(run, None, None, {"n": n}, None, None, 0.0, 0.001))
    assert (len(recorder.runs), recorder.dropped_runs) == (100, 50)
    assert not await recorder.flush()
    assert (len(recorder.runs), recorder.dropped_runs) == (100, 50)  # the batch came back
    assert recorder.runs[0].input == b'{"n":50}'  # the oldest went first


async def test_a_batch_that_cannot_be_stored_is_counted_as_dropped(empty_database: str) -> None:
    # No migrations here: the runs table does not exist, which no retry can fix.
    recorder = RunRecorder(empty_database, RunsConfig(), Redactor())
    for n in range(3):
        run = RunInfo(f"00000000-0000-7000-8000-{n:012d}", "trace", "a", "api")
        recorder.add_run(RunEntry(run, None, None, {"n": n}, None, None, time.time(), 0.001))
    assert not await recorder.flush()  # False: the flusher backs off before the next batch
    assert (len(recorder.runs), recorder.dropped_runs) == (0, 3)
    await recorder.close()


def waiting_for_a_lock(dsn: str, table: str) -> bool:
    """Whether some session waits for a lock on actions_server.`table`."""
    return bool(
        query(
            dsn,
            "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            f"actions_server.{table}",
        )
    )


async def test_a_batch_being_written_at_shutdown_is_not_lost(
    app: Client, empty_database: str
) -> None:
    config = dataclasses.replace(RunsConfig(), batch_size=40, flush_interval_seconds=0.01)
    recorder = RunRecorder(empty_database, config, Redactor())
    recorder.start()
    async with await psycopg.AsyncConnection.connect(empty_database) as blocker:
        # COPY waits on this lock, so the flusher is caught in the middle of a batch.
        await blocker.execute("LOCK TABLE actions_server.runs IN EXCLUSIVE MODE")
        for n in range(100):
            run = RunInfo(f"00000000-0000-7000-8000-{n:012d}", "trace", "x.held", "api")
            recorder.add_run(RunEntry(run, None, None, {"n": n}, None, None, time.time(), 0.001))
        # A batch was taken and its COPY is stuck behind the lock.
        assert await eventually(lambda: waiting_for_a_lock(empty_database, "runs"))
        closing = asyncio.create_task(recorder.close())
        # Waiting for its batch, not giving up on it (load can only make it wait longer).
        done, _ = await asyncio.wait({closing}, timeout=0.3)
        assert not done
        await blocker.rollback()
    await closing
    assert len(runs(empty_database, "x.held")) == 100
    assert recorder.dropped_runs == 0


async def test_maintenance_prunes_runs_past_their_retention(
    app: Client, empty_database: str
) -> None:
    await app.post("/echo", json={"n": 1})
    await eventually(lambda: runs(empty_database, "r.echo"))
    query(
        empty_database,
        "INSERT INTO actions_server.runs (id, action, trigger, status, started_at, duration_ms,"
        " trace_id) VALUES (%s, 'r.old', 'api', 'ok', now() - interval '31 days', 1, 't')",
        first_id_at(time.time() - 31 * 86400 - 5),
    )
    async with app.runtime.database.pool.connection() as conn:
        pruned = await run_maintenance(conn, app.runtime.config)
    assert pruned["runs"] == 1
    assert [
        r["action"] for r in query(empty_database, "SELECT action FROM actions_server.runs")
    ] == ["r.echo"]
    await asyncio.sleep(0)
