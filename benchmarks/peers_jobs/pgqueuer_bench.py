"""PgQueuer's side of benchmarks/jobs_peers.py, run in the pgqueuer venv.

    python pgqueuer_bench.py install DSN
    python pgqueuer_bench.py enqueue DSN append|insert COUNT
    python pgqueuer_bench.py work DSN append|insert OUT [--pool 16]

`work` runs one QueueManager on the psycopg driver with `batch_size=100` and
`max_concurrent_tasks=200` until SIGTERM. Its two entrypoints are the
actions-server handlers of benchmarks/jobs_peers_app, line for line: `append`
writes one line to OUT, `insert` runs one INSERT in a transaction of its own on
a psycopg pool of `--pool` connections (as many as actions-server's job pool).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

import psycopg
import uvloop
from pgqueuer import Job, PsycopgDriver, Queries, QueueManager
from psycopg_pool import AsyncConnectionPool

BATCH_SIZE, MAX_CONCURRENT_TASKS = 100, 200


async def install(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await Queries(PsycopgDriver(conn)).install()


async def enqueue(dsn: str, kind: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        for first in range(0, count, 500):
            numbers = range(first, min(count, first + 500))
            await queries.enqueue(
                [kind] * len(numbers),
                [json.dumps({"n": n}).encode() for n in numbers],
                [0] * len(numbers),
            )


async def work(dsn: str, kind: str, out: str, pool_size: int) -> None:
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False) as pool,
    ):
        qm = QueueManager(Queries(PsycopgDriver(conn)))

        @qm.entrypoint("append")
        async def append(job: Job) -> None:
            payload = json.loads(job.payload or b"{}")
            with open(out, "a") as file:  # noqa: ASYNC230 - the job, as in actions-server's
                file.write(f"{payload['n']} {time.time()}\n")

        @qm.entrypoint("insert")
        async def insert(job: Job) -> None:
            payload = json.loads(job.payload or b"{}")
            async with pool.connection() as db:  # one transaction, committed on exit
                await db.execute("INSERT INTO bench_rows (n) VALUES (%s)", (payload["n"],))

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, qm.shutdown.set)
        print("ready", flush=True)
        await qm.run(batch_size=BATCH_SIZE, max_concurrent_tasks=MAX_CONCURRENT_TASKS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["install", "enqueue", "work"])
    parser.add_argument("dsn")
    parser.add_argument("kind", nargs="?", choices=["append", "insert"])
    parser.add_argument("arg", nargs="?")
    parser.add_argument("--pool", type=int, default=16)
    args = parser.parse_args()
    if args.command == "install":
        uvloop.run(install(args.dsn))
    elif args.command == "enqueue":
        uvloop.run(enqueue(args.dsn, args.kind, int(args.arg)))
    else:
        uvloop.run(work(args.dsn, args.kind, args.arg, args.pool))


if __name__ == "__main__":
    main()
