"""Database-bound requests: actions-server against a hand-written aiohttp + psycopg app.

Both run the same statements on the same database with a pool of the same size
(actions-server's default run pool, 10), one process each pinned to CPU 0, wrk on
CPU 1; PostgreSQL shares the two cores, as it would on a small host:

- `POST /items`: `INSERT INTO items (name) VALUES (%s) RETURNING id, name`;
- `GET /items/1`: `SELECT id, name FROM items WHERE id = %s`;
- the same read from an action with `transaction: false` (autocommit, as the
  baseline runs every statement).

actions-server runs each request as one transaction (the default: BEGIN goes out
with the first statement, then COMMIT), records runs as its defaults say, and
validates the input; the baseline is autocommit with no checks. Printed: median
req/s per server over alternating rounds, p99, server CPU per request, and the
paired ratio actions-server / baseline.

    DATABASE_URL=postgresql://... python benchmarks/db_bound.py [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from actions_server.db.migrate import apply_migrations
from http_overhead import _UNITS, cpu_seconds, free_port, pinned, start_server
from scratch_db import drop_database, fresh_database

HERE = Path(__file__).resolve().parent
LOAD_CPU = 1
CASES = {
    "POST /items": ("POST", "/items", '{"name": "a new item"}'),
    "GET /items/1": ("GET", "/items/1", None),
    "GET /items/1, transaction: false": ("GET", "/items-autocommit/1", None),
}
TARGET = 0.90


def measure(base: str, method: str, path: str, body: str | None, seconds: float, conns: int):
    command = [*pinned(LOAD_CPU), "wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(
                f"wrk.method = \"{method}\"\nwrk.body = '{body}'\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            script.flush()
            command += ["-s", script.name]
        output = subprocess.run(
            [*command, base + path], capture_output=True, text=True, check=True
        ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"errors while measuring {base + path}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    return requests / seconds, float(value) * _UNITS[unit]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server_dsn = os.environ.get("DATABASE_URL")
    if not server_dsn:
        raise SystemExit("set DATABASE_URL to a PostgreSQL server where a database may be created")
    name, dsn = fresh_database(server_dsn, "dbbench")
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        import asyncio

        asyncio.run(apply_migrations(dsn, HERE / "db_app" / "migrations"))
        raw_port, ours_port = free_port(), free_port()
        os.environ["DATABASE_URL"] = dsn  # the app's config.yaml reads it
        servers["hand-written"] = (
            start_server(
                [sys.executable, str(HERE / "raw_db.py"), str(raw_port), dsn, "10"], HERE, raw_port
            ),
            raw_port,
        )
        ours = [
            sys.executable,
            "-m",
            "actions_server.cli",
            "serve",
            "config.yaml",
            "--no-worker",
            "--port",
            str(ours_port),
        ]
        servers["actions-server"] = (start_server(ours, HERE / "db_app", ours_port), ours_port)
        for case, (method, path, body) in CASES.items():
            for _process, port in servers.values():  # warm-up
                measure(f"http://127.0.0.1:{port}", method, path, body, 1, args.connections)
            for _ in range(args.rounds):
                for name_, (process, port) in servers.items():
                    before = cpu_seconds(process.pid)
                    rps, p99 = measure(
                        f"http://127.0.0.1:{port}",
                        method,
                        path,
                        body,
                        args.seconds,
                        args.connections,
                    )
                    cpu = (cpu_seconds(process.pid) - before) / (rps * args.seconds) * 1e6
                    results.setdefault((case, name_), []).append((rps, p99, cpu))
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        drop_database(server_dsn, name)
    print(f"\n{'case':<34} {'server':<15} {'req/s':>8} {'p99 ms':>7} {'CPU µs/req':>11}")
    for case in CASES:
        for name_ in servers:
            rows = results[(case, name_)]
            rps, p99, cpu = (statistics.median(r[i] for r in rows) for i in range(3))
            print(f"{case:<34} {name_:<15} {rps:>8.0f} {p99:>7.2f} {cpu:>11.1f}")
        pairs = zip(results[(case, "actions-server")], results[(case, "hand-written")], strict=True)
        ratio = statistics.median(a[0] / b[0] for a, b in pairs)
        print(f"{case:<34} {'ratio':<15} {ratio:>8.2f}   (target ≥ {TARGET:.2f})")


if __name__ == "__main__":
    main()
