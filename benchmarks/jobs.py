"""Queue throughput and latency: actions-server's worker against a bare claim loop.

    DATABASE_URL=postgresql://... python benchmarks/jobs.py [--jobs 20000] [--batch 500]

In a fresh database on the server DATABASE_URL names:

1. enqueue: `--jobs` no-op jobs, `--batch` per INSERT (one transaction each),
   through actions-server's own enqueue; jobs/s.
2. drain: one `actions-server worker` process (pinned to CPU 0, this script on
   CPU 1) runs them all; jobs/s from the first claim to the last completion,
   read from the jobs' own timestamps. The baseline drains the same number with
   a bare loop in this process: the same claim statement, no executor, one
   batched UPDATE per claim, i.e. what PostgreSQL allows here. Printed with the
   ratio actions-server / bare loop.
3. latency: single pushes (one transaction each, as a handler's push would be)
   at a steady rate while the worker idles; enqueue-to-start p50/p99 from the
   jobs' created_at and started_at (both the database's clock).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from actions_server.db.migrate import apply_migrations
from actions_server.queue import store
from scratch_db import drop_database, fresh_database  # a sibling: run as a script

HERE = Path(__file__).resolve().parent
APP = HERE / "jobs_app"


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def job(n: int) -> store.NewJob:
    return store.NewJob(
        kind="job", name="noop", action="jobs.noop", payload={"n": n}, max_attempts=3
    )


async def enqueue(dsn: str, count: int, batch: int) -> float:
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        started = time.perf_counter()
        for first in range(0, count, batch):
            await store.enqueue(conn, [job(n) for n in range(first, min(count, first + batch))])
        return count / (time.perf_counter() - started)


async def drained_rate(dsn: str, count: int) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n,"
                " extract(epoch FROM max(finished_at) - min(started_at)) AS seconds"
                " FROM actions_server.jobs WHERE status = 'done'"
            )
        ).fetchone()
    assert row is not None
    assert row["n"] == count, row
    return count / float(row["seconds"])


async def wait_done(dsn: str, count: int, within: float = 300) -> None:
    deadline = time.monotonic() + within
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        while time.monotonic() < deadline:
            row = await (
                await conn.execute(
                    "SELECT count(*) AS n FROM actions_server.jobs WHERE status = 'done'"
                )
            ).fetchone()
            if row and row["n"] >= count:
                return
            await asyncio.sleep(0.05)
    raise SystemExit("the jobs were not all done in time")


async def bare_drain(dsn: str, count: int, batch: int) -> float:
    """The floor: claim `batch`, mark them done, repeat — no handler, no executor."""
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        started = time.perf_counter()
        done = 0
        while done < count:
            rows = await store.claim(conn, "bare", batch, 30)
            if not rows:
                break
            await store.complete(conn, [store.Claim(r["id"], r["claim"]) for r in rows])
            done += len(rows)
        return done / (time.perf_counter() - started)


async def latency(dsn: str, pushes: int, rate: float) -> tuple[float, float]:
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        interval = 1 / rate
        next_at = time.perf_counter()
        for n in range(pushes):
            await store.enqueue(conn, [job(n)])
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await wait_done(dsn, pushes)
    async with await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
        rows = await (
            await conn.execute(
                "SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms"
                " FROM actions_server.jobs"
            )
        ).fetchall()
    waits = sorted(float(r["ms"]) for r in rows)
    return statistics.median(waits), waits[int(len(waits) * 0.99) - 1]


def reset(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE actions_server.jobs")


def start_worker(dsn: str, concurrency: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": dsn, "CONCURRENCY": str(concurrency)}
    command = [
        *pinned(0),
        sys.executable,
        "-m",
        "actions_server.cli",
        "worker",
        "config.yaml",
        "--no-migrate",
    ]
    return subprocess.Popen(command, cwd=APP, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="jobs per INSERT when enqueueing")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="the worker's queue.concurrency"
    )
    parser.add_argument(
        "--pushes", type=int, default=1000, help="single pushes for the latency test"
    )
    parser.add_argument("--rate", type=float, default=200, help="single pushes per second")
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database can be created")
    os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") and (
        os.cpu_count() or 1
    ) > 1 else None
    name, dsn = fresh_database(server_dsn, "bench_jobs")
    try:
        asyncio.run(apply_migrations(dsn, None))
        with psycopg.connect(dsn) as conn:
            settings = {
                s: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(s))).fetchone()[0]  # type: ignore[index]
                for s in ("synchronous_commit", "fsync", "shared_buffers", "server_version")
            }
        print(f"database: {settings}")
        print(
            f"jobs: {args.jobs}, enqueue batch {args.batch}, worker concurrency {args.concurrency} "
            "(claims as many as free slots), worker pool max 4"
        )

        enqueue_rate = asyncio.run(enqueue(dsn, args.jobs, args.batch))
        baseline = asyncio.run(bare_drain(dsn, args.jobs, args.concurrency))
        reset(dsn)
        asyncio.run(enqueue(dsn, args.jobs, args.batch))
        worker = start_worker(dsn, args.concurrency)
        try:
            asyncio.run(wait_done(dsn, args.jobs))
            drain_rate = asyncio.run(drained_rate(dsn, args.jobs))
            reset(dsn)
            time.sleep(0.5)  # the worker goes idle, listening
            p50, p99 = asyncio.run(latency(dsn, args.pushes, args.rate))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
    finally:
        drop_database(server_dsn, name)

    ratio = drain_rate / baseline
    print(f"\nenqueue              {enqueue_rate:>9.0f} jobs/s   ({args.batch} per INSERT)")
    print(f"drain, bare loop     {baseline:>9.0f} jobs/s   (claim {args.concurrency}, one UPDATE)")
    print(f"drain, worker        {drain_rate:>9.0f} jobs/s   {ratio:.2f} x bare loop (target 5000)")
    print(
        f"enqueue → start      p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"({args.pushes} single pushes at {args.rate:g}/s; targets p50 ≤ 5 ms, p99 ≤ 50 ms)"
    )


if __name__ == "__main__":
    main()
