"""Workers as real processes: killed, stopped, and several at once on one cron."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from actions_server.queue import store
from support.apps import write_app
from support.polling import connect, query
from support.processes import Served

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MIGRATION = """
CREATE TABLE ran (id serial PRIMARY KEY, n int, job_id text, pid int, fire_time timestamptz);
"""

MANIFEST = """
module: w
actions:
  - name: w.slow
    handler: PKG.handlers:slow
    triggers: [{event: job.slow}]
  - name: w.tick
    handler: PKG.handlers:tick
    run_as: system
    triggers: [{cron: "* * * * * *"}]
"""

HANDLERS = """
import asyncio, os

async def slow(input, ctx):
    hold_from = os.environ.get("HOLD_FROM")
    if hold_from is not None and input["n"] >= int(hold_from):
        await asyncio.sleep(3600)  # held: only a kill or a shutdown ends it
    await asyncio.sleep(input["seconds"])
    await ctx.db.table("ran").insert({"n": input["n"], "job_id": ctx.run.job_id, "pid": os.getpid()})

async def tick(input, ctx):
    [job] = await ctx.db.raw("SELECT run_at FROM actions_server.jobs WHERE id = %s", int(ctx.run.job_id))
    await ctx.db.table("ran").insert({"job_id": ctx.run.job_id, "pid": os.getpid(), "fire_time": job["run_at"]})
"""


def make_app(folder: Path, *, cron: bool, queue: str) -> Path:
    manifest = MANIFEST if cron else MANIFEST.split("  - name: w.tick")[0]
    config, _ = write_app(
        folder,
        {"w.yaml": manifest},
        HANDLERS,
        migrations={"001.sql": MIGRATION},
        config=f"app: w\ndatabase: {{url: '${{DATABASE_URL}}'}}\nqueue: {queue}\n",
    )
    return config


def worker(config: Path, dsn: str, log: str, **env_vars: str) -> Served:
    env = {**os.environ, "DATABASE_URL": dsn, **env_vars}
    return Served(["worker", str(config)], config.parent, env, config.parent / log)


def push_slow(dsn: str, count: int, seconds: float) -> None:
    async def go() -> None:
        async with await connect(dsn) as conn:
            jobs = [
                store.NewJob(
                    kind="job",
                    name="slow",
                    action="w.slow",
                    payload={"n": n, "seconds": seconds},
                    max_attempts=5,
                )
                for n in range(count)
            ]
            await store.enqueue(conn, jobs)

    asyncio.run(go())


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def migrate(config: Path, dsn: str) -> None:
    from click.testing import CliRunner

    from actions_server.cli import main

    result = CliRunner().invoke(main, ["migrate", str(config)], env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output


def statuses(dsn: str) -> dict[str, int]:
    rows = query(dsn, "SELECT status, count(*) AS n FROM actions_server.jobs GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


def test_a_killed_worker_loses_nothing(tmp_path: Path, empty_database: str) -> None:
    config = make_app(
        tmp_path, cron=False, queue="{concurrency: 4, lease_seconds: 2, poll_interval_seconds: 1}"
    )
    migrate(config, empty_database)
    push_slow(empty_database, 12, 0)
    # Jobs 0-3 finish; 4-7 are claimed next and held, so the four in flight at the
    # kill are known for sure and no claim or commit races the SIGKILL.
    first = worker(config, empty_database, "first.log", HOLD_FROM="4")
    try:
        wait_for(
            lambda: statuses(empty_database) == {"done": 4, "running": 4, "queued": 4},
            30,
            "four jobs done and four held",
        )
        in_flight = {
            r["id"]
            for r in query(
                empty_database, "SELECT id FROM actions_server.jobs WHERE status = 'running'"
            )
        }
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.stop()
    second = worker(config, empty_database, "second.log")
    try:
        wait_for(lambda: statuses(empty_database) == {"done": 12}, 60, "every job to be done")
    finally:
        assert second.stop() == 0, second.output()
    ran = query(empty_database, "SELECT n, job_id FROM ran")
    assert sorted(r["n"] for r in ran) == list(range(12))  # each effect once: none lost, none twice
    retried = query(empty_database, "SELECT id FROM actions_server.jobs WHERE attempts > 1")
    assert {
        r["id"] for r in retried
    } == in_flight  # exactly the jobs in flight at the kill ran again
    assert "put back" in second.output() or "put back" in first.output()


def test_sigterm_finishes_running_jobs_and_leaves_the_rest_queued(
    tmp_path: Path, empty_database: str
) -> None:
    config = make_app(tmp_path, cron=False, queue="{concurrency: 4, shutdown_grace_seconds: 10}")
    migrate(config, empty_database)
    push_slow(empty_database, 20, 0.5)
    served = worker(config, empty_database, "worker.log")
    try:
        wait_for(lambda: query(empty_database, "SELECT 1 FROM ran"), 30, "the first job")
    finally:
        assert served.stop() == 0, served.output()
    after = statuses(empty_database)
    assert "running" not in after
    assert after.get("done", 0) + after.get("queued", 0) == 20
    done_ids = {
        str(r["id"])
        for r in query(empty_database, "SELECT id FROM actions_server.jobs WHERE status = 'done'")
    }
    assert done_ids == {r["job_id"] for r in query(empty_database, "SELECT job_id FROM ran")}
    # A second worker finishes the rest, and still nothing runs twice.
    again = worker(config, empty_database, "again.log")
    try:
        wait_for(lambda: statuses(empty_database) == {"done": 20}, 60, "every job to be done")
    finally:
        assert again.stop() == 0
    assert sorted(r["n"] for r in query(empty_database, "SELECT n FROM ran")) == list(range(20))


def test_past_the_grace_unfinished_jobs_are_released_not_counted(
    tmp_path: Path, empty_database: str
) -> None:
    config = make_app(tmp_path, cron=False, queue="{concurrency: 2, shutdown_grace_seconds: 0.5}")
    migrate(config, empty_database)
    push_slow(empty_database, 2, 3600)
    served = worker(config, empty_database, "worker.log")
    try:
        wait_for(lambda: statuses(empty_database).get("running") == 2, 30, "both jobs to run")
    finally:
        # The jobs would run for an hour: the worker exits because the grace ran out
        # (stop() fails if it has not exited after 30 s).
        assert served.stop(30) == 0, served.output()
    assert query(empty_database, "SELECT status, attempts FROM actions_server.jobs") == [
        {"status": "queued", "attempts": 0},
        {"status": "queued", "attempts": 0},
    ]
    assert query(empty_database, "SELECT count(*) AS n FROM ran") == [{"n": 0}]


def test_three_workers_run_each_cron_tick_exactly_once(tmp_path: Path, empty_database: str) -> None:
    config = make_app(tmp_path, cron=True, queue="{concurrency: 4}")
    migrate(config, empty_database)
    workers = [worker(config, empty_database, f"w{i}.log") for i in range(3)]
    fired = "SELECT count(*) AS n, count(DISTINCT pid) AS pids FROM ran"
    try:
        wait_for(
            lambda: (row := query(empty_database, fired)[0])["n"] >= 8 and row["pids"] >= 2,
            90,
            "eight ticks run by at least two workers",
        )
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0, 0], [w.output() for w in workers]
    fires = [
        r["fire_time"]
        for r in query(empty_database, "SELECT fire_time FROM ran ORDER BY fire_time")
    ]
    assert len(fires) >= 8
    assert len(fires) == len(set(fires))  # no tick twice
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(fires)}
    assert gaps == {1.0}  # and none skipped
    pids = {r["pid"] for r in query(empty_database, "SELECT pid FROM ran")}
    assert len(pids) >= 2  # the ticks were shared out, not run by one instance only
