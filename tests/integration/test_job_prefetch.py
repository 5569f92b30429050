"""Jobs a worker claimed beyond its free slots (held ready while the slots are busy):
they start in priority order, their leases are kept, an operator can cancel them,
and a stopping worker gives them back without counting an attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actions_server.queue import store
from actions_server.queue.prefetch import Prefetch
from support.apps import Client, serving, working, write_app
from support.polling import connect, eventually, query

pytestmark = pytest.mark.integration

MANIFEST = """
module: p
actions:
  - name: p.step
    handler: PKG.handlers:step
    transaction: false
    triggers: [{event: job.step}]
"""

HANDLERS = """
import asyncio

async def step(input, ctx):
    await ctx.db.raw("INSERT INTO marks (name) VALUES (%s)", input["name"])  # commits at once
    await asyncio.sleep(input.get("seconds", 0))
"""


class Held(Prefetch):
    """A prefetch of the size the test sets, whatever the measured timings."""

    def __init__(self, size: int) -> None:
        super().__init__(1)
        self.now = size

    @property
    def size(self) -> int:
        return self.now


@pytest.fixture
async def app(tmp_path: Path, empty_database: str) -> AsyncIterator[Client]:
    config, _ = write_app(
        tmp_path,
        {"p.yaml": MANIFEST},
        HANDLERS,
        config="app: p\ndatabase: {url: '${DATABASE_URL:-embedded}'}\n",
        migrations={"001.sql": "CREATE TABLE marks (n serial, name text);"},
    )
    async with serving(config, empty_database) as client:
        yield client


async def enqueue(dsn: str, *jobs: dict[str, Any]) -> list[int]:
    """Queue `step` jobs (name, optional seconds and priority) while no worker runs."""
    async with await connect(dsn) as conn:
        return await store.enqueue(
            conn,
            [
                store.NewJob(
                    kind="job",
                    name="step",
                    action="p.step",
                    payload={"name": job["name"], "seconds": job.get("seconds", 0)},
                    priority=job.get("priority", 0),
                    max_attempts=3,
                )
                for job in jobs
            ],
        )


def marks(dsn: str) -> list[str]:
    return [r["name"] for r in query(dsn, "SELECT name FROM marks ORDER BY n")]


def jobs(dsn: str) -> dict[str, dict[str, Any]]:
    rows = query(dsn, "SELECT payload->>'name' AS name, status, attempts FROM actions_server.jobs")
    return {row["name"]: {"status": row["status"], "attempts": row["attempts"]} for row in rows}


async def test_jobs_held_ready_start_in_priority_order_once_a_slot_frees(
    app: Client, empty_database: str
) -> None:
    await enqueue(
        empty_database,
        {"name": "a"},
        {"name": "b"},
        {"name": "c", "priority": 5, "seconds": 1.0},
        {"name": "d", "priority": 1},
    )
    async with working(app, prefetch=Held(3), concurrency=1):
        assert await eventually(lambda: marks(empty_database) == ["c"])
        # One claim took all four: one runs, three wait ready in this worker.
        assert {job["status"] for job in jobs(empty_database).values()} == {"running"}
        assert await eventually(lambda: len(marks(empty_database)) == 4)
    assert marks(empty_database) == ["c", "d", "a", "b"]
    assert await eventually(
        lambda: all(
            job == {"status": "done", "attempts": 1} for job in jobs(empty_database).values()
        )
    )


async def test_a_stopping_worker_gives_back_the_jobs_it_had_not_started(
    app: Client, empty_database: str
) -> None:
    await enqueue(empty_database, {"name": "x", "seconds": 60}, {"name": "y"}, {"name": "z"})
    async with working(app, prefetch=Held(2), concurrency=1, shutdown_grace_seconds=0.2):
        assert await eventually(lambda: marks(empty_database) == ["x"])
        assert jobs(empty_database)["y"]["status"] == "running"  # claimed, held ready
    assert marks(empty_database) == ["x"]
    assert jobs(empty_database) == {
        name: {"status": "queued", "attempts": 0} for name in ("x", "y", "z")
    }


async def test_an_operator_cancels_a_job_held_ready_before_it_starts(
    app: Client, empty_database: str
) -> None:
    _, held = await enqueue(empty_database, {"name": "x", "seconds": 1.5}, {"name": "y"})
    async with working(app, prefetch=Held(1), concurrency=1):
        assert await eventually(lambda: marks(empty_database) == ["x"])
        async with await connect(empty_database) as conn:
            assert await store.cancel(conn, held) == "requested"
        assert await eventually(lambda: jobs(empty_database)["y"]["status"] == "cancelled")
        assert await eventually(lambda: jobs(empty_database)["x"]["status"] == "done")
    assert marks(empty_database) == ["x"]


async def test_a_held_job_whose_lease_was_taken_back_runs_once(
    app: Client, empty_database: str
) -> None:
    # y waits ready behind x when its lease runs out (a stalled worker) and any
    # worker's reaper puts it back; claimed again, it must not also run from the
    # stale entry.
    _, held = await enqueue(empty_database, {"name": "x", "seconds": 2.0}, {"name": "y"})
    async with working(app, prefetch=Held(1), concurrency=1):
        assert await eventually(lambda: marks(empty_database) == ["x"])
        async with await connect(empty_database) as conn:
            await conn.execute(
                "UPDATE actions_server.jobs SET locked_until = now() - interval '1s' WHERE id = %s",
                (held,),
            )
            assert await store.reap_expired(conn) == [held]
        assert await eventually(lambda: jobs(empty_database)["y"]["status"] == "done")
    assert marks(empty_database) == ["x", "y"]


async def test_a_job_pushed_while_every_slot_and_hold_is_taken_starts_when_one_frees(
    app: Client, empty_database: str
) -> None:
    # The claim got less than it asked for, then the prefetch shrank (a slow job):
    # the NOTIFY of a new job finds no room, and must still be acted on later.
    prefetch = Held(1)
    await enqueue(empty_database, {"name": "x", "seconds": 1.0})
    async with working(app, prefetch=prefetch, concurrency=1, poll_interval_seconds=60):
        assert await eventually(lambda: marks(empty_database) == ["x"])
        prefetch.now = 0
        await enqueue(empty_database, {"name": "y"})
        assert await eventually(lambda: marks(empty_database) == ["x", "y"], seconds=15)


async def test_jobs_held_behind_a_slow_one_go_to_an_idle_worker(
    app: Client, empty_database: str
) -> None:
    quick = Prefetch(1)
    quick.claimed(0.005)
    quick.ran(0.001)  # what quick jobs before taught it: hold up to 4
    await enqueue(
        empty_database,
        {"name": "slow", "priority": 5, "seconds": 6.0},
        {"name": "a"},
        {"name": "b"},
        {"name": "c"},
    )
    await app.runtime.database.open_jobs_pool(2)  # both workers' runs take from it
    async with working(app, prefetch=quick, concurrency=1, poll_interval_seconds=60):
        assert await eventually(lambda: marks(empty_database) == ["slow"])
        async with working(app, concurrency=1, poll_interval_seconds=60):
            assert await eventually(
                lambda: sorted(marks(empty_database)) == [*sorted("abc"), "slow"]
            )
            assert jobs(empty_database)["slow"]["status"] == "running"
    assert {name: job["attempts"] for name, job in jobs(empty_database).items()} == dict.fromkeys(
        ["slow", "a", "b", "c"], 1
    )


async def test_a_freed_slot_takes_the_next_job_while_the_others_run(
    app: Client, empty_database: str
) -> None:
    await enqueue(
        empty_database,
        *({"name": f"long{n}", "seconds": 6.0, "priority": 2} for n in range(3)),
        {"name": "short", "priority": 1},
        {"name": "next"},
    )
    async with working(app, prefetch=Held(0), concurrency=4, poll_interval_seconds=60):
        assert await eventually(lambda: "next" in marks(empty_database))
        assert {jobs(empty_database)[f"long{n}"]["status"] for n in range(3)} == {"running"}
