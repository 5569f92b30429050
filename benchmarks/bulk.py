"""Bulk pushes and emits from one action, against the same rows inserted by hand.

    DATABASE_URL=postgresql://... python benchmarks/bulk.py [--count 100000] [--rounds 3]

In a fresh database on the server DATABASE_URL names, with the benchmark app's
default settings (benchmarks/jobs_app), one action run in this process:

- `push_many`: `ctx.queue.push_many("noop", count payloads)` in the run's transaction;
- `emit_many`: `ctx.event.emit_many("bulk.happened", count payloads)`, one
  subscriber, so `count` events and `count` deliveries;
- baseline: the same `count` job rows written by COPY on a plain connection in
  one transaction (and one NOTIFY): the fastest way into PostgreSQL, with no
  framework around it.

Printed: jobs/s for each (median of `--rounds`, the jobs table emptied between
rounds), the ratio to the baseline, and the issue's target (50,000 jobs/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from actions_server.builtins import load_app
from actions_server.config import load_config
from actions_server.db.migrate import apply_migrations
from actions_server.runtime import open_runtime
from scratch_db import drop_database, fresh_database  # a sibling: run as a script

APP = Path(__file__).resolve().parent / "jobs_app"
TARGET = 50_000


async def baseline(dsn: str, count: int) -> float:
    """The same rows by COPY on a plain connection, in one transaction: the floor."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        started = time.perf_counter()
        async with conn.transaction(), conn.cursor() as cursor:
            async with cursor.copy(
                "COPY actions_server.jobs (kind, name, action, payload, max_attempts) FROM STDIN"
            ) as copy:
                for n in range(count):
                    await copy.write_row(("job", "noop", "jobs.noop", Jsonb({"n": n}), 3))
            await cursor.execute("SELECT pg_notify('actions_server_jobs', '')")
        return count / (time.perf_counter() - started)


async def through_actions(dsn: str, count: int, rounds: int) -> dict[str, list[float]]:
    config = load_config(APP / "config.yaml", env={"DATABASE_URL": dsn})
    registry = load_app(config)
    rates: dict[str, list[float]] = {"push_many": [], "emit_many": [], "baseline": []}
    async with open_runtime(config, registry, dsn=dsn) as runtime:
        for _ in range(rounds):
            for label, action in (("push_many", "jobs.pushMany"), ("emit_many", "jobs.emitMany")):
                spec = registry.action(action)
                assert spec is not None
                started = time.perf_counter()
                await runtime.executor.run(spec, {"count": count}, trigger="cli")
                rates[label].append(count / (time.perf_counter() - started))
                truncate(dsn)
            rates["baseline"].append(await baseline(dsn, count))
            truncate(dsn)
    return rates


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE actions_server.jobs, actions_server.events")
        conn.execute("VACUUM actions_server.jobs")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database can be created")
    name, dsn = fresh_database(server_dsn, "bench_bulk")
    try:
        asyncio.run(apply_migrations(dsn, None))
        rates = asyncio.run(through_actions(dsn, args.count, args.rounds))
    finally:
        drop_database(server_dsn, name)
    base = statistics.median(rates["baseline"])
    print(f"{args.count} jobs per run, median of {args.rounds} rounds")
    print(f"{'':<12}{'jobs/s':>10}{'× baseline':>12}{'target':>10}")
    for label in ("baseline", "push_many", "emit_many"):
        rate = statistics.median(rates[label])
        verdict = "" if label == "baseline" else ("ok" if rate >= TARGET else "MISSED")
        print(f"{label:<12}{rate:>10,.0f}{rate / base:>12.2f}{verdict:>10}")


if __name__ == "__main__":
    main()
