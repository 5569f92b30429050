"""actions-server's worker with its defaults against PgQueuer, and enqueue → start latency.

    DATABASE_URL=postgresql://... python benchmarks/jobs_peers.py [--jobs 20000] [--rounds 3]

1. Drain, for each handler and round, each system in a fresh database of its own
   on the server DATABASE_URL names (the order alternating from round to round):
   `--jobs` jobs are queued first, then one worker process, pinned to CPU 0 (this
   script runs on CPU 1), runs them all:

   - actions-server: `actions-server worker` on benchmarks/jobs_peers_app, the
     default configuration (`queue.concurrency: 16`, default pools, every run
     recorded);
   - PgQueuer: benchmarks/peers_jobs/pgqueuer_bench.py in a venv of its own
     (benchmarks/.peers/pgqueuer, made on first use): the psycopg driver,
     `batch_size=100`, `max_concurrent_tasks=200`.

   Two handlers, the same code in both: `append` writes one line to a file;
   `insert` runs one INSERT in a transaction of its own (actions-server's through
   ctx.db, PgQueuer's on a psycopg pool of 16 connections, as many as
   actions-server's job pool). jobs/s is measured by the handlers' own clocks:
   from the first job's write to the last (the time in each line, or
   `clock_timestamp()` in each row), so start-up counts for neither.

2. Latency (actions-server): `actions-server serve` (its worker inside, the
   default) answers `POST /push`, whose handler pushes a job carrying the time
   it started and commits; the job's handler notes how long after that it
   started. The same for `POST /emit`: `ctx.event.emit` → the subscriber's start.
   `--pushes` requests of each, one at a time at `--rate` per second;
   `--separate-worker` runs `serve --no-worker` and a `worker` process instead.

Printed: jobs/s per round and their medians, the ratio actions-server / PgQueuer
per round (targets ≥ 2 for append, ≥ 1.5 for insert) and the latency p50/p99
(targets ≤ 2 ms and ≤ 20 ms). Servers listen on ports 19400-19499.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from actions_server.db.migrate import apply_migrations
from actions_server.queue import store
from http_peers import ports  # siblings: run as a script
from peers_venv import peer_python, versions
from scratch_db import drop_database, fresh_database

HERE = Path(__file__).resolve().parent
APP = HERE / "jobs_peers_app"
PGQUEUER = HERE / "peers_jobs" / "pgqueuer_bench.py"
HANDLERS = ("append", "insert")
TARGETS = {"append": 2.0, "insert": 1.5}
ROWS_TABLE = (
    "CREATE TABLE bench_rows (id bigserial PRIMARY KEY, n integer NOT NULL,"
    " at timestamptz NOT NULL DEFAULT clock_timestamp())"
)


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def appended_rate(out: Path, count: int) -> float | None:
    """jobs/s by the append handlers' own clocks, once `count` lines are written."""
    lines = out.read_text().splitlines() if out.exists() else []
    if len(lines) < count:
        return None
    numbers = {int(line.split()[0]) for line in lines}
    assert len(numbers) == count == len(lines), (len(numbers), len(lines), count)
    times = [float(line.split()[1]) for line in lines]
    return count / (max(times) - min(times))


def inserted_rate(dsn: str, count: int) -> float | None:
    """jobs/s by the inserted rows' clock_timestamp(), once `count` rows exist."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT n), extract(epoch FROM max(at) - min(at))"
            " FROM bench_rows"
        ).fetchone()
    assert row is not None
    if row[0] < count:
        return None
    assert row[0] == row[1] == count, row
    return count / float(row[2])


def wait_for(rate: Callable[[], float | None], worker: subprocess.Popen[bytes]) -> float:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with {worker.returncode}")
        got = rate()
        if got is not None:
            return got
        time.sleep(0.25)
    raise SystemExit("the jobs were not all done in time")


async def enqueue_ours(dsn: str, handler: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, row_factory=dict_row
    ) as conn:
        for first in range(0, count, 500):
            jobs = [
                store.NewJob(
                    kind="job", name=handler, action=f"peers.{handler}", payload={"n": n},
                    max_attempts=3,
                )
                for n in range(first, min(count, first + 500))
            ]  # fmt: skip
            await store.enqueue(conn, jobs)


def drain(system: str, server_dsn: str, handler: str, count: int) -> float:
    """One system's jobs/s draining `count` pre-queued jobs, in a fresh database."""
    name, dsn = fresh_database(server_dsn, f"bench_peers_{system}")
    out = Path(tempfile.mkdtemp(prefix="jobs_peers_")) / "out.txt"
    worker: subprocess.Popen[bytes] | None = None
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(ROWS_TABLE)  # type: ignore[arg-type]  # a literal, not user input
        if system == "actions-server":
            asyncio.run(apply_migrations(dsn, None))
            asyncio.run(enqueue_ours(dsn, handler, count))
            env = {**os.environ, "DATABASE_URL": dsn, "BENCH_OUT": str(out)}
            command = [sys.executable, "-m", "actions_server.cli", "worker", "config.yaml"]
            worker = subprocess.Popen([*pinned(0), *command, "--no-migrate"], cwd=APP, env=env)
        else:
            python = str(peer_python("pgqueuer"))
            subprocess.run([python, str(PGQUEUER), "install", dsn], check=True)
            subprocess.run([python, str(PGQUEUER), "enqueue", dsn, handler, str(count)], check=True)
            command = [python, str(PGQUEUER), "work", dsn, handler, str(out)]
            worker = subprocess.Popen([*pinned(0), *command], stdout=subprocess.DEVNULL)
        if handler == "append":
            return wait_for(lambda: appended_rate(out, count), worker)
        return wait_for(lambda: inserted_rate(dsn, count), worker)
    finally:
        if worker is not None:
            stop(worker)
        shutil.rmtree(out.parent, ignore_errors=True)
        drop_database(server_dsn, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    """One push (or emit) → start, in epoch seconds; the middle two by PostgreSQL's clock."""

    pushed: float  # the pushing handler started
    begun: float  # its transaction began (the job's created_at)
    claimed: float  # a worker claimed the job (its started_at)
    started: float  # the job's handler started

    @property
    def total_ms(self) -> float:
        return (self.started - self.pushed) * 1000


def latency(
    server_dsn: str, pushes: int, rate: float, separate: bool = False
) -> dict[str, list[Wait]]:
    """From a pushing/emitting handler's start to the job's/subscriber's start.

    `separate`: `serve --no-worker` and a `worker` process (both on CPU 0) rather
    than serve's own worker.
    """
    name, dsn = fresh_database(server_dsn, "bench_peers_latency")
    out = Path(tempfile.mkdtemp(prefix="jobs_peers_")) / "out.txt"
    [port] = ports(1)
    env = {**os.environ, "DATABASE_URL": dsn, "BENCH_OUT": str(out)}
    command = [sys.executable, "-m", "actions_server.cli", "serve", "config.yaml"]
    if separate:
        command.append("--no-worker")
    server = subprocess.Popen(
        [*pinned(0), *command, "--port", str(port)], cwd=APP, env=env, stdout=subprocess.DEVNULL
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + 90
        while True:  # up once it answers
            try:
                conn.request("POST", "/push", body=b"{}")
                conn.getresponse().read()
                break
            except OSError:
                conn.close()
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("actions-server serve did not start") from None
                time.sleep(0.2)
        if separate:  # started once serve has migrated the database
            command = [sys.executable, "-m", "actions_server.cli", "worker", "config.yaml"]
            worker = subprocess.Popen([*pinned(0), *command, "--no-migrate"], cwd=APP, env=env)
        time.sleep(1.5)  # the warm-up job has run, the worker idles
        out.write_text("")
        for path in ("/push", "/emit"):
            interval, next_at = 1 / rate, time.perf_counter()
            for _ in range(pushes):
                conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                assert response.status < 300, response.status
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
        conn.close()
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while len(lines) < 2 * pushes and time.monotonic() < deadline:
            time.sleep(0.25)
            lines = out.read_text().splitlines()
        with psycopg.connect(dsn) as db:
            rows = db.execute(
                "SELECT (payload->>'t')::float8, extract(epoch FROM created_at)::float8,"
                " extract(epoch FROM started_at)::float8 FROM actions_server.jobs"
                " WHERE action IN ('peers.pushed', 'peers.emitted')"
            ).fetchall()
        times = {pushed: (begun, claimed) for pushed, begun, claimed in rows}
        waits: dict[str, list[Wait]] = {"job": [], "event": []}
        for line in lines:
            kind, pushed, started = line.split()
            begun, claimed = times[float(pushed)]
            waits[kind].append(
                Wait(pushed=float(pushed), begun=begun, claimed=claimed, started=float(started))
            )
        return waits
    finally:
        if worker is not None:
            stop(worker)
        stop(server)
        shutil.rmtree(out.parent, ignore_errors=True)
        drop_database(server_dsn, name)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def drains_table(rates: dict[tuple[str, str], list[float]], handlers: list[str]) -> None:
    print(
        "\n| handler | actions-server jobs/s | PgQueuer jobs/s | ratio per round | median |", end=""
    )
    print(" target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for handler in handlers:
        ours, theirs = rates[(handler, "actions-server")], rates[(handler, "PgQueuer")]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(
            f"| {handler} | {statistics.median(ours):,.0f} | {statistics.median(theirs):,.0f} "
            f"| {' '.join(f'{r:.2f}' for r in ratios)} | **{statistics.median(ratios):.2f}** "
            f"| ≥ {TARGETS[handler]:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--handlers", nargs="*", choices=HANDLERS, default=list(HANDLERS))
    parser.add_argument("--pushes", type=int, default=1000, help="per latency case; 0: none")
    parser.add_argument("--rate", type=float, default=200, help="pushes per second")
    parser.add_argument(
        "--separate-worker",
        action="store_true",
        help="latency: serve --no-worker plus a worker process, rather than serve alone",
    )
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database can be created")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    print(f"pgqueuer venv: {versions('pgqueuer')}")
    print(f"jobs: {args.jobs} per drain, {args.rounds} rounds, handlers {', '.join(args.handlers)}")

    systems = ["actions-server", "PgQueuer"]
    rates: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for handler in args.handlers:
            for system in systems if round_ % 2 == 0 else systems[::-1]:
                got = drain(system, server_dsn, handler, args.jobs)
                rates.setdefault((handler, system), []).append(got)
                print(
                    f"round {round_ + 1}: {handler:<7} {system:<15} {got:>8.0f} jobs/s", flush=True
                )
    waits = latency(server_dsn, args.pushes, args.rate, args.separate_worker) if args.pushes else {}

    if rates:
        drains_table(rates, args.handlers)
    if waits:
        print(
            f"\nlatency ({args.pushes} each at {args.rate:g}/s; targets p50 ≤ 2 ms, p99 ≤ 20 ms):\n"
        )
        print("| from → to | p50 ms | p99 ms | max ms |")
        print("| --- | ---: | ---: | ---: |")
        for kind, label in (
            ("job", "ctx.queue.push → job"),
            ("event", "ctx.event.emit → subscriber"),
        ):
            got = [w.total_ms for w in waits[kind]]
            print(
                f"| {label} | {percentile(got, 0.5):.2f} | {percentile(got, 0.99):.2f} "
                f"| {max(got):.2f} |"
            )
        print("\nwhere it goes, p50 / p99 ms of each leg (the middle by PostgreSQL's now()):\n")
        print("| from → to | handler start → its transaction began | → claimed | → job's start |")
        print("| --- | ---: | ---: | ---: |")
        for kind, label in (("job", "push → job"), ("event", "emit → subscriber")):
            legs = [
                [(w.begun - w.pushed) * 1000 for w in waits[kind]],
                [(w.claimed - w.begun) * 1000 for w in waits[kind]],
                [(w.started - w.claimed) * 1000 for w in waits[kind]],
            ]
            cells = [f"{percentile(leg, 0.5):.2f} / {percentile(leg, 0.99):.2f}" for leg in legs]
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
