"""The database path alone, without HTTP: CPU per run against bare psycopg_pool.

    DATABASE_URL=postgresql://... python benchmarks/db_path.py [--runs 4000] [--rounds 3]

Each case reads one row by primary key, 32 at a time on a pool of 10 (the
defaults of db_bound.py's servers), in this one process on uvloop:

- bare: `pool.connection()` + `execute` + `fetchall` on an autocommit
  psycopg_pool (the hand-written baseline of db_bound.py);
- run, transactional: a DbSession as a run uses it (BEGIN, the statement, COMMIT);
- run, `transaction: false`: a DbSession outside a transaction;
- and, on the bare pool, the three ways psycopg can send a transactional read
  (docs/decisions.md): BEGIN, the read and COMMIT apart (three round trips);
  BEGIN and the read in a pipeline, then COMMIT; `BEGIN; <read>` as one
  simple-query text with the value bound on the client, then COMMIT.

Printed: runs/s and CPU µs per run (this process's user + system time), the
median over rounds, and the ratios of bare's CPU to each case's; and, when the
server runs on this machine, PostgreSQL's CPU µs per run (every `postgres`
process's, from /proc, counted in clock ticks per process: coarse, so it needs
many runs, e.g. `--runs 12000`). Run pinned to one CPU (`taskset -c 0`) for figures that
do not depend on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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


def postgres_cpu_seconds() -> float | None:
    """CPU time of every process named `postgres` on this machine (None: none here)."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended
            continue
        name, _, rest = text.partition(" (")[2].partition(") ")
        if name == "postgres":
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


async def autocommit_pool(dsn: str) -> AsyncConnectionPool:
    """The hand-written baseline's pool: autocommit, POOL connections, all open."""
    pool = AsyncConnectionPool(
        dsn, min_size=POOL, max_size=POOL, kwargs={"autocommit": True}, open=False
    )
    await pool.open()
    await pool.wait()
    return pool


async def bare(dsn: str) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    pool = await autocommit_pool(dsn)

    async def one() -> None:
        async with pool.connection() as conn:
            cursor = await conn.execute(READ, (1,))
            await cursor.fetchall()

    return one, pool.close


async def by_hand(
    dsn: str, how: str
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """A transactional read sent by psycopg as `how` says: apart, pipeline or text."""
    pool = await autocommit_pool(dsn)

    async def one() -> None:
        async with pool.connection() as conn:
            if how == "apart":
                await conn.execute("BEGIN")
                cursor = await conn.execute(READ, (1,))
            elif how == "pipeline":
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    cursor = await conn.execute(READ, (1,))
            else:
                cursor = psycopg.AsyncClientCursor(conn)
                await cursor.execute("BEGIN; " + READ, (1,))
                cursor.nextset()
            await cursor.fetchall()
            await conn.commit()

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


async def measure(one: Callable[[], Awaitable[None]], runs: int) -> tuple[float, float, float]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def limited() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(limited() for _ in range(500)))  # warm-up: statements prepared
    cpu, server, began = cpu_seconds(), postgres_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(runs)))
    rate, ours = runs / (time.perf_counter() - began), (cpu_seconds() - cpu) / runs * 1e6
    after = postgres_cpu_seconds()
    theirs = (after - server) / runs * 1e6 if after is not None and server is not None else -1
    return rate, ours, theirs


async def bench(dsn: str, runs: int, rounds: int) -> None:
    cases = {
        "bare psycopg_pool": lambda: bare(dsn),
        "run, transactional": lambda: run(dsn, True),
        "run, transaction: false": lambda: run(dsn, False),
        "psycopg: apart": lambda: by_hand(dsn, "apart"),
        "psycopg: pipeline": lambda: by_hand(dsn, "pipeline"),
        "psycopg: one text": lambda: by_hand(dsn, "text"),
    }
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, make in cases.items():
            one, close = await make()
            try:
                results[name].append(await measure(one, runs))
            finally:
                await close()
    base_cpu = statistics.median(cpu for _, cpu, _ in results["bare psycopg_pool"])
    print(
        f"\n{'case':<26} {'runs/s':>8} {'CPU µs/run':>11} {'bare CPU / this':>16}"
        f" {'PostgreSQL CPU µs/run':>22}"
    )
    for name, rows in results.items():
        rate = statistics.median(r for r, _, _ in rows)
        cpu = statistics.median(c for _, c, _ in rows)
        server = statistics.median(s for _, _, s in rows)
        shown = f"{server:.1f}" if server >= 0 else "-"
        print(f"{name:<26} {rate:>8.0f} {cpu:>11.1f} {base_cpu / cpu:>16.2f} {shown:>22}")


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
