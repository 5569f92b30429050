"""The database path alone, without HTTP: CPU per run against bare psycopg_pool.

    DATABASE_URL=postgresql://... python benchmarks/db_path.py [--runs 4000] [--rounds 3]

Each case reads one row by primary key, 32 at a time on a pool of 10 (the
defaults of db_bound.py's servers), in this one process on uvloop:

- bare: `pool.connection()` + `execute` + `fetchall` on an autocommit
  psycopg_pool (the hand-written baseline of db_bound.py);
- run, transactional: a DbSession as a run uses it (BEGIN, the statement, COMMIT);
- run, `transaction: false`: a DbSession outside a transaction (a check that
  the connection is alive, then the statement).

Printed: runs/s and CPU µs per run (this process's user + system time), the
median over rounds, and the ratios of bare's CPU to each case's. Run pinned to
one CPU (`taskset -c 0`) for figures that do not depend on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable

import psycopg
import uvloop
from psycopg_pool import AsyncConnectionPool

from actions_server.db.pool import Database
from actions_server.db.session import DbSession
from scratch_db import drop_database, fresh_database  # a sibling: run as a script

CONCURRENCY = 32
POOL = 10
READ = "SELECT id, name FROM items WHERE id = %s"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bare(dsn: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    pool = AsyncConnectionPool(
        dsn, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    await pool.wait()

    async def one() -> None:
        async with pool.connection() as conn:
            cursor = await conn.execute(READ, (1,))
            await cursor.fetchall()

    return one, pool.close


async def run(
    dsn: str, transactional: bool
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    database = Database(dsn, min_size=POOL, max_size=POOL)
    await database.open()

    async def one() -> None:
        session = DbSession(database, transactional=transactional, role=None, jobs=False)
        await session.raw(READ, 1)
        await session.finish(commit=True)

    return one, database.close


async def measure(one: Callable[[], Awaitable[None]], runs: int) -> tuple[float, float]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def limited() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(limited() for _ in range(500)))  # warm-up: statements prepared
    cpu, began = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(runs)))
    return runs / (time.perf_counter() - began), (cpu_seconds() - cpu) / runs * 1e6


async def bench(dsn: str, runs: int, rounds: int) -> None:
    cases = {
        "bare psycopg_pool": lambda: bare(dsn),
        "run, transactional": lambda: run(dsn, True),
        "run, transaction: false": lambda: run(dsn, False),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, make in cases.items():
            one, close = await make()
            try:
                results[name].append(await measure(one, runs))
            finally:
                await close()
    base_cpu = statistics.median(cpu for _, cpu in results["bare psycopg_pool"])
    print(f"\n{'case':<26} {'runs/s':>8} {'CPU µs/run':>11} {'bare CPU / this':>16}")
    for name, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"{name:<26} {rate:>8.0f} {cpu:>11.1f} {base_cpu / cpu:>16.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database may be created")
    name, dsn = fresh_database(server_dsn, "dbpath")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
            conn.execute("INSERT INTO items (name) VALUES ('item 1')")
        uvloop.run(bench(dsn, args.runs, args.rounds))
    finally:
        drop_database(server_dsn, name)


if __name__ == "__main__":
    main()
