"""What one instance does against one PostgreSQL, direct and through PgBouncer.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python benchmarks/scale.py

In a fresh database on the server DATABASE_URL names, with the scale-out rig's
app (tests/support/fleet.py: `POST /orders` writes a row, pushes a job and emits
an event in one transaction; `GET /orders/:ref` reads one row):

1. PostgreSQL's own ceiling here: single-row INSERT commits per second from 8
   connections (the baseline every figure below is a share of).
2. Two `serve --no-worker` instances (pinned to CPU 0, wrk on CPU 1), one
   straight to PostgreSQL, one through PgBouncer (transaction pooling, started
   here), measured in turn for `--rounds` rounds (the best of each kept, so a
   burst of someone else's work on the machine costs one round, not the figure):
   requests/s for the read and for the write.
3. One `worker` (through PgBouncer) drains the jobs and event deliveries those
   writes left: jobs/s from the jobs' own timestamps.

It prints each figure and the arithmetic of docs/deployment.md ("What limits one
PostgreSQL"): how many write-serving instances and workers one PostgreSQL takes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the rig's parts live with the tests

from scratch_db import drop_database, fresh_database  # noqa: E402 - a sibling
from support.fleet import Fleet, write_rig_app  # noqa: E402
from support.rig import PgBouncer  # noqa: E402

SERVER_CPU, LOAD_CPU = 0, 1
WRITES = """
local prefix = "p"
function init(args) prefix = args[1] end
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/orders", {["Content-Type"] = "application/json"},
                    string.format('{"ref":"%s-%d"}', prefix, n))
end
"""


def pinned(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


async def commit_ceiling(dsn: str, seconds: float, clients: int = 8) -> float:
    """Single-row INSERT commits per second from `clients` connections."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_commits (id bigserial, at timestamptz)"
        )
    stop = time.monotonic() + seconds
    counts = [0] * clients

    async def client(i: int) -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < stop:
                await conn.execute("INSERT INTO bench_commits (at) VALUES (now())")
                counts[i] += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return sum(counts) / seconds


def wrk(url: str, seconds: float, connections: int, script: str | None = None) -> float:
    """Requests per second that wrk measured (non-2xx answers make it fail)."""
    command = [*pinned(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or "")
    command += ["-s", lua.name, url, "--", f"w{time.time_ns()}"]  # refs unique per run
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(lua.name)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def serve_one(folder: Path, env: dict[str, str]) -> tuple[Fleet, str]:
    config = write_rig_app(folder, pool_max=10, concurrency=16)
    fleet = Fleet(config, {**env, "PYTHONOPTIMIZE": "1"})
    fleet.serve("bench")
    served = fleet.members["bench"]
    fleet.wait_healthy()
    if pinned(SERVER_CPU):
        subprocess.run(
            ["taskset", "-pc", str(SERVER_CPU), str(served.served.process.pid)],
            check=True,
            capture_output=True,
        )
    return fleet, served.base


def http_figures(base: str, seconds: float, connections: int) -> dict[str, float]:
    writes = wrk(base + "/orders", seconds, connections, WRITES)
    # A read of a row that is there (the first write of the run).
    with psycopg.connect(os.environ["BENCH_DIRECT"]) as conn:
        ref = conn.execute("SELECT ref FROM orders ORDER BY id LIMIT 1").fetchone()[0]  # type: ignore[index]
    reads = wrk(f"{base}/orders/{ref}", seconds, connections)
    return {"write_rps": round(writes), "read_rps": round(reads)}


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: max(r[key] for r in rounds) for key in rounds[0]}


def drain_jobs(folder: Path, env: dict[str, str], direct: str, timeout: float = 600) -> float:
    """Start one worker, wait for the queue to empty; jobs/s first start → last finish."""
    fleet = Fleet(write_rig_app(folder, pool_max=10, concurrency=16), env)
    fleet.worker("worker")
    deadline = time.monotonic() + timeout
    try:
        with psycopg.connect(direct, autocommit=True) as conn:
            while time.monotonic() < deadline:
                left = conn.execute(
                    "SELECT count(*) FROM actions_server.jobs WHERE status <> 'done'"
                ).fetchone()[0]  # type: ignore[index]
                if left == 0:
                    break
                time.sleep(0.5)
            n, span = conn.execute(
                "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at)) "
                "FROM actions_server.jobs"
            ).fetchone()  # type: ignore[misc]
    finally:
        fleet.stop()
    return float(n) / float(span)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5, help="per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = os.environ["DATABASE_URL"]
    name, direct = fresh_database(server, "bench_scale")
    os.environ["BENCH_DIRECT"] = direct
    folder = Path(tempfile.mkdtemp(prefix="actions-server-scale-"))
    folder.chmod(0o755)
    bouncer = PgBouncer(folder / "pgbouncer", server, pool_size=20)
    figures: dict[str, object] = {}
    try:
        bouncer.start()
        pooled = bouncer.dsn(name)
        figures["postgres_commits_per_s"] = round(asyncio.run(commit_ceiling(direct, args.seconds)))
        fleets: dict[str, tuple[Fleet, str]] = {}
        rounds: dict[str, list[dict[str, float]]] = {}
        try:
            for label, url in (("direct", direct), ("pgbouncer", pooled)):
                fleets[label] = serve_one(
                    folder / label, {"DATABASE_URL": url, "LISTEN_URL": direct}
                )
                rounds[label] = []
            for _ in range(args.rounds):
                for label, (_, base) in fleets.items():
                    rounds[label].append(http_figures(base, args.seconds, args.connections))
        finally:
            for fleet, _ in fleets.values():
                fleet.stop()
        for label, measured in rounds.items():
            figures[label] = best(measured)
        env = {"DATABASE_URL": pooled, "LISTEN_URL": direct}
        figures["worker_jobs_per_s"] = round(drain_jobs(folder / "worker", env, direct))
    finally:
        bouncer.stop()
        drop_database(server, name)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    commits = float(figures["postgres_commits_per_s"])  # type: ignore[arg-type]
    write = float(figures["pgbouncer"]["write_rps"])  # type: ignore[index]
    jobs = float(figures["worker_jobs_per_s"])  # type: ignore[arg-type]
    # An order: its request's transaction, then a job and an event delivery, each
    # one transaction (the completion commits with the handler's work).
    per_order = 3
    print(
        f"one PostgreSQL here: ~{commits / per_order:.0f} orders/s at most "
        f"({commits:.0f} commits/s / {per_order} commits an order); one instance writes "
        f"{write:.0f}/s and one worker runs {jobs:.0f} jobs/s, so about "
        f"{commits / per_order / write:.1f} write-serving instances and "
        f"{commits / per_order * 2 / jobs:.1f} workers before PostgreSQL is the limit"
    )


if __name__ == "__main__":
    main()
